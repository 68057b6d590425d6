"""CTAs per SM and the limiting resource, following the CUDA occupancy calculator (cuda_occupancy.h)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from gpusim.errors import OpError
from gpusim.spec import GpuSpec, load_spec

LIMITERS: tuple[str, ...] = ("blocks", "warps", "registers", "shared_memory")
INVALID = -1  # limiter code of a launch that cannot run at all (too many threads, registers or bytes)

# Positions in the limits vector.
(
    _WARPS,
    _BLOCKS,
    _THREADS_BLK,
    _WARP,
    _REGS_SM,
    _REGS_THR,
    _REG_UNIT,
    _PARTS,
    _SMEM_SM,
    _SMEM_BLK,
    _SMEM_UNIT,
    _SMEM_RESV,
    LIMIT_GRID_YZ,  # not a per-SM limit: the largest grid y/z dimension (gpusim.engine, batched GEMMs)
) = range(13)


def limits_vector(spec: GpuSpec) -> np.ndarray:
    """The spec's per-SM limits, then its largest grid y/z dimension, as an int64 vector for the Numba engine."""
    lim = spec.limits
    return np.array(
        [
            lim.max_warps_per_sm,
            lim.max_blocks_per_sm,
            lim.max_threads_per_block,
            lim.warp_size,
            lim.registers_per_sm,
            lim.max_registers_per_thread,
            lim.register_allocation_unit,
            lim.register_partitions,
            lim.shared_memory_per_sm,
            lim.max_shared_memory_per_block,
            lim.shared_memory_allocation_unit,
            lim.reserved_shared_memory_per_block,
            lim.max_grid_dim_yz,
        ],
        dtype=np.int64,
    )


@njit(cache=True)
def _round_up(x: int, unit: int) -> int:
    return ((x + unit - 1) // unit) * unit


@njit(cache=True)
def blocks_per_sm(limits: np.ndarray, threads: int, regs: int, smem: int) -> tuple[int, int]:
    """(resident CTAs per SM, limiter code) for one kernel; (0, INVALID) if it cannot launch."""
    if threads <= 0 or threads > limits[_THREADS_BLK] or regs > limits[_REGS_THR] or smem > limits[_SMEM_BLK]:
        return 0, INVALID
    warps = (threads + limits[_WARP] - 1) // limits[_WARP]
    by_blocks = limits[_BLOCKS]
    by_warps = limits[_WARPS] // warps
    by_regs = by_blocks
    if regs > 0:
        regs_per_warp = _round_up(regs * limits[_WARP], limits[_REG_UNIT])
        warps_per_partition = (limits[_REGS_SM] // limits[_PARTS]) // regs_per_warp
        by_regs = (warps_per_partition * limits[_PARTS]) // warps
    by_smem = by_blocks
    per_cta = _round_up(smem + limits[_SMEM_RESV], limits[_SMEM_UNIT])
    if per_cta > 0:
        by_smem = limits[_SMEM_SM] // per_cta
    best = by_blocks
    code = 0
    if by_warps < best:
        best, code = by_warps, 1
    if by_regs < best:
        best, code = by_regs, 2
    if by_smem < best:
        best, code = by_smem, 3
    if best <= 0:
        return 0, code
    return best, code


@dataclass(frozen=True)
class Occupancy:
    """Result of the occupancy calculation for one kernel on one GPU."""

    blocks_per_sm: int
    limiter: str
    warps_per_sm: int
    occupancy: float  # resident warps / maximum warps per SM


def occupancy(
    spec: GpuSpec | str, threads_per_block: int, registers_per_thread: int = 0, shared_memory_per_block: int = 0
) -> Occupancy:
    """Resident CTAs per SM and which resource limits them (blocks, warps, registers, shared_memory)."""
    spec = load_spec(spec)
    lim = spec.limits
    for name, value, top in (
        ("threads_per_block", threads_per_block, lim.max_threads_per_block),
        ("registers_per_thread", registers_per_thread, lim.max_registers_per_thread),
        ("shared_memory_per_block", shared_memory_per_block, lim.max_shared_memory_per_block),
    ):
        if value < 0 or value > top or (name == "threads_per_block" and value == 0):
            low = 1 if name == "threads_per_block" else 0
            raise OpError(f"{name}: {value} is outside {low}..{top} on {spec.name} (CC {lim.compute_capability})")
    blocks, code = blocks_per_sm(limits_vector(spec), threads_per_block, registers_per_thread, shared_memory_per_block)
    warps = -(-threads_per_block // lim.warp_size) * blocks
    return Occupancy(
        blocks_per_sm=int(blocks),
        limiter=LIMITERS[code],
        warps_per_sm=int(warps),
        occupancy=warps / lim.max_warps_per_sm,
    )
