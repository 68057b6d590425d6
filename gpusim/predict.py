"""Predict kernel launches and latency for ops on a GPU spec (the public entry of the simulator)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from gpusim.calibration import constants_for, constants_vector
from gpusim.dtypes import DTYPE_BYTES, check_dtype
from gpusim.engine import gemm_select, stream_launch
from gpusim.kernels import gemm_tiles, uses_tensor_cores
from gpusim.lowering import GemmProblem, StreamProblem, lower
from gpusim.occupancy import INVALID, LIMITERS, limits_vector
from gpusim.ops import Op
from gpusim.spec import GpuSpec, load_spec


@dataclass(frozen=True)
class KernelLaunch:
    """One predicted kernel launch: which kernel, how its grid fills the GPU, and its time."""

    op_index: int
    op_name: str
    op_kind: str
    kernel: str
    grid: int
    threads: int
    ctas_per_sm: int
    limiter: str
    waves: int
    tail_fill: float
    time_us: float
    split_k: int = 1

    def to_dict(self) -> dict:
        """Plain dict for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class Prediction:
    """Predicted launches of a list of ops, per-op times and the total, on one GPU and dtype."""

    gpu: str
    dtype: str
    launches: list[KernelLaunch]
    op_times_us: np.ndarray
    total_us: float

    def to_dict(self) -> dict:
        """Plain dict for JSON output."""
        return {"gpu": self.gpu, "dtype": self.dtype, "total_us": self.total_us,
                "launches": [k.to_dict() for k in self.launches]}


def device_vector(spec: GpuSpec, dtype: str) -> np.ndarray:
    """[SMs, CUDA-core FLOP/us, tensor-core FLOP/us, DRAM bytes/us] for dtype at the sustained clock."""
    tensor = uses_tensor_cores(spec, dtype)
    simt = spec.peak_flops_per_us("fp32" if tensor else dtype)
    return np.array([spec.sm_count, simt, spec.peak_flops_per_us(dtype) if tensor else 0.0,
                     spec.dram_bytes_per_us()], dtype=np.float64)


def engine_inputs(spec: GpuSpec, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(tile table, limits, device vector, constants) that the engine needs for spec and dtype."""
    _, table = gemm_tiles(spec, dtype)
    return table, limits_vector(spec), device_vector(spec, dtype), constants_vector(spec.architecture)


def _launch(op: Op, index: int, kernel: str, threads: int, grid, b, lim, waves, tail, t, split=1) -> KernelLaunch:
    return KernelLaunch(op_index=index, op_name=op.name, op_kind=op.kind, kernel=kernel, grid=int(grid),
                        threads=int(threads), ctas_per_sm=int(b), limiter="none" if lim == INVALID else LIMITERS[lim],
                        waves=int(waves), tail_fill=float(tail), time_us=float(t), split_k=int(split))


def predict(ops: Op | Sequence[Op], spec: GpuSpec | str, dtype: str = "fp16", allow_split_k: bool = True) -> Prediction:
    """Predict every kernel launch of `ops` on `spec` in `dtype`; launches keep the ops' order."""
    spec = load_spec(spec)
    check_dtype(dtype)
    op_list: list[Op] = [ops] if isinstance(ops, Op) else list(ops)
    elem = DTYPE_BYTES[dtype]
    problems = [p for i, op in enumerate(op_list) for p in lower(op, i, elem)]
    gemms = [p for p in problems if isinstance(p, GemmProblem)]
    streams = [p for p in problems if isinstance(p, StreamProblem)]
    table, limits, device, consts = engine_inputs(spec, dtype)
    tiles, _ = gemm_tiles(spec, dtype)
    by_problem: dict[int, KernelLaunch] = {}
    if gemms:
        cols = np.array([(g.m, g.n, g.k, g.batch) for g in gemms], dtype=np.int64).T
        moved = np.array([g.dram_bytes for g in gemms], dtype=np.float64)
        res = gemm_select(cols[0], cols[1], cols[2], cols[3], moved, elem, table, limits, device, consts, allow_split_k)
        for g, j, s, grid, b, lim, w, tail, t in zip(gemms, *res):
            by_problem[id(g)] = _launch(op_list[g.op_index], g.op_index, tiles[j].name(spec, dtype), tiles[j].threads,
                                        grid, b, lim, w, tail, t, s)
    if streams:
        work = np.array([s.work for s in streams], dtype=np.int64)
        moved = np.array([s.bytes_moved for s in streams], dtype=np.float64)
        flops = np.array([s.flops for s in streams], dtype=np.float64)
        threads = np.array([s.threads for s in streams], dtype=np.int64)
        per_thread = np.array([s.work_per_thread for s in streams], dtype=np.int64)
        res = stream_launch(work, moved, flops, threads, per_thread, 32, limits, device, consts)
        for s, grid, b, lim, w, tail, t in zip(streams, *res):
            by_problem[id(s)] = _launch(op_list[s.op_index], s.op_index, f"{s.label}_kernel", s.threads,
                                        grid, b, lim, w, tail, t)
    launches = [by_problem[id(p)] for p in problems]
    op_times = np.zeros(len(op_list))
    for k in launches:
        op_times[k.op_index] += k.time_us
    return Prediction(gpu=spec.name, dtype=dtype, launches=launches, op_times_us=op_times,
                      total_us=float(op_times.sum()))


def launch_overhead_us(spec: GpuSpec | str) -> float:
    """The per-kernel launch overhead the model adds for spec's architecture family."""
    return constants_for(load_spec(spec).architecture).launch_overhead_us
