"""The kernel catalogue: GEMM tile descriptions per architecture, as data (after CUTLASS's TileDescription).

Each row is one kernel a library really ships: CTA tile BM x BN x BK, threads, pipeline
stages, in-CTA K slices (cuBLAS's "sliced1x4"), the math it uses and the compute
capabilities it runs on. The kernel's printed name is derived from the row so that it can
be matched against names recorded by the profiler (e.g. `volta_sgemm_128x64`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from gpusim.dtypes import DTYPE_BYTES
from gpusim.spec import GpuSpec

# Tensor-op tiles load K in 64-byte slabs; their BK is 64 bytes / element size.
_TENSOR_K_BYTES = 64


@dataclass(frozen=True)
class TileDescription:
    """One GEMM kernel: its CTA tile, launch shape and where it runs."""

    math: str  # "simt" (CUDA cores) or "tensorop" (tensor cores)
    bm: int
    bn: int
    threads: int
    stages: int
    min_cc: int  # compute capability x10, inclusive
    max_cc: int  # inclusive
    k_slices: int = 1  # in-CTA split of K across warp groups
    bk_simt: int = 8

    def bk(self, dtype: str) -> int:
        """K depth of one main-loop step for dtype."""
        return self.bk_simt if self.math == "simt" else _TENSOR_K_BYTES // DTYPE_BYTES[dtype]

    def shared_memory(self, dtype: str) -> int:
        """Shared memory per CTA in bytes: stages x (A tile + B tile) x element size x K slices."""
        return self.stages * (self.bm + self.bn) * self.bk(dtype) * DTYPE_BYTES[dtype] * self.k_slices

    def registers(self) -> int:
        """Registers per thread: fp32 accumulators per thread plus addressing and staging (~56), at most 255."""
        accumulators = self.bm * self.bn * self.k_slices // self.threads
        return min(255, accumulators + 56)

    def name(self, spec: GpuSpec, dtype: str) -> str:
        """The kernel name as the library prints it (architecture prefix, instruction, tile)."""
        cc = spec.cc_major_minor[0] * 10 + spec.cc_major_minor[1]
        prefix = "maxwell" if cc < 70 else "volta" if cc < 80 else "ampere" if cc < 90 else "sm90"
        sliced = f"_sliced1x{self.k_slices}" if self.k_slices > 1 else ""
        if self.math == "simt":
            return f"{prefix}_sgemm_{self.bm}x{self.bn}{sliced}"
        instr = {70: "h884", 75: "h1688"}.get(cc, "h16816")
        if dtype in ("tf32", "fp32"):
            instr = "s1688" if cc < 90 else "s16816"
        elif dtype == "int8":
            instr = "i8816" if cc < 80 else "i16832"
        elif dtype == "bf16":
            instr = "bf16816"
        prefix = "turing" if cc == 75 else prefix
        return f"{prefix}_{instr}gemm_{self.bm}x{self.bn}_{self.bk(dtype)}x{self.stages}"


# cuBLAS SGEMM tiles recorded on Pascal/Volta/Turing/Ampere (shared NeuSight data: names and blocks).
_SIMT = [
    TileDescription("simt", 128, 128, 256, 2, 50, 99),
    TileDescription("simt", 128, 64, 128, 2, 50, 99),
    TileDescription("simt", 128, 32, 256, 2, 50, 99),
    TileDescription("simt", 32, 128, 256, 2, 50, 99),
    TileDescription("simt", 64, 64, 64, 2, 50, 99),
    TileDescription("simt", 128, 32, 256, 2, 70, 99, k_slices=4),
    TileDescription("simt", 64, 32, 256, 2, 70, 99, k_slices=4),
    TileDescription("simt", 32, 32, 128, 2, 80, 99, k_slices=4),
]

# Tensor-core tiles (CUTLASS defaults; GPU_FACTS.md "Kernels"): 2 stages before SM80, multistage after.
_TENSOR = [
    *(TileDescription("tensorop", bm, bn, t, 2, 70, 79) for bm, bn, t in
      ((256, 128, 256), (128, 256, 256), (128, 128, 256), (128, 64, 128), (64, 128, 128), (64, 64, 128))),
    *(TileDescription("tensorop", bm, bn, t, s, 80, 89) for bm, bn, t, s in
      ((256, 128, 256, 3), (128, 256, 256, 3), (128, 128, 256, 4), (128, 64, 128, 6), (64, 128, 128, 6), (64, 64, 128, 10))),
    *(TileDescription("tensorop", bm, bn, t, s, 90, 99) for bm, bn, t, s in
      ((256, 128, 256, 4), (128, 256, 256, 4), (128, 128, 256, 4), (128, 64, 128, 6), (64, 128, 128, 6), (64, 64, 128, 8))),
]

# Columns of the tile table the engine reads.
TILE_COLUMNS: tuple[str, ...] = ("bm", "bn", "bk", "threads", "regs", "smem", "k_slices", "tensor")


def uses_tensor_cores(spec: GpuSpec, dtype: str) -> bool:
    """Whether GEMMs of dtype run on tensor cores on this GPU."""
    cc = spec.cc_major_minor[0] * 10 + spec.cc_major_minor[1]
    if dtype == "fp32" or not spec.has_native(dtype):
        return False
    if dtype in ("fp16",):
        return cc >= 70
    if dtype == "int8":
        return cc >= 75
    return cc >= 80  # tf32, bf16


@lru_cache(maxsize=256)
def _tile_table(cc: int, tensor: bool, dtype: str) -> tuple[tuple[TileDescription, ...], np.ndarray]:
    pool = _TENSOR if tensor else _SIMT
    tiles = tuple(t for t in pool if t.min_cc <= cc <= t.max_cc)
    staged = dtype if tensor else "fp32"  # CUDA-core kernels stage operands as fp32
    table = np.array([[t.bm, t.bn, t.bk(staged), t.threads, t.registers(), t.shared_memory(staged),
                       t.k_slices, int(tensor)] for t in tiles], dtype=np.int64)
    return tiles, table.reshape(len(tiles), len(TILE_COLUMNS))


def gemm_tiles(spec: GpuSpec, dtype: str) -> tuple[tuple[TileDescription, ...], np.ndarray]:
    """The GEMM kernels available for dtype on spec, and their int64 table (TILE_COLUMNS)."""
    cc = spec.cc_major_minor[0] * 10 + spec.cc_major_minor[1]
    return _tile_table(cc, uses_tensor_cores(spec, dtype), dtype)
