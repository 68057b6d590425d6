"""Predict kernel launches and latency for ops on a GPU spec (the public entry of the simulator)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from gpusim.calibration import CONSTANT_NAMES, constants_for, constants_vector
from gpusim.dtypes import DTYPE_BYTES, check_dtype, check_dtype_on
from gpusim.engine import (
    C_DRAM_EFF,
    C_OVERHEAD,
    C_SIMT_EFF,
    C_TENSOR_DRAM,
    C_TENSOR_EFF,
    C_WAVE_LATENCY,
    D_DRAM_BW,
    D_SIMT_RATE,
    D_SMS,
    D_TENSOR_RATE,
    GemmLaunches,
    StreamLaunches,
    device_array,
    gemm_select,
    launch_waves,
    output_tiles,
    stream_launch,
)
from gpusim.errors import OpError
from gpusim.kernels import TileDescription, gemm_tiles, kernel_table
from gpusim.lowering import FusedProblem, GemmProblem, StreamProblem, lower
from gpusim.occupancy import INVALID, LIMIT_GRID_YZ, LIMITERS, limits_vector
from gpusim.ops import Op, Target
from gpusim.spec import GpuSpec, load_spec

# GEMM labels whose math rate is scaled by a calibrated efficiency (label -> constant name).
_RATE_SCALES = {
    "winograd_fused": "winograd_fused_efficiency",
    "winograd_gemm": "winograd_nonfused_efficiency",
    "implicit_gemm": "implicit_gemm_efficiency",
}
_PLAN_CACHE_INDEX = CONSTANT_NAMES.index("cudnn_plan_cache_us_per_entry")


@dataclass(frozen=True)
class KernelLaunch:
    """One predicted kernel launch: which kernel, how its grid fills the GPU, and its time."""

    op_index: int
    op_name: str
    op_kind: str
    algorithm: str
    kernel: str
    grid: int
    threads: int
    ctas_per_sm: int
    limiter: str
    waves: int
    tail_fill: float
    time_us: float
    split_k: int = 1
    # a memory-bound streaming kernel (elementwise, GEMV): its CTAs share the DRAM bandwidth, so a partly filled
    # last wave costs in proportion to its CTAs, and no part of it is idle (gpusim.engine.resident_waves)
    streaming: bool = False

    def idle_tail_us(self, overhead_us: float) -> float:
        """Time the launch's partly filled last wave leaves SMs idle: its busy time (less `overhead_us`, the launch
        overhead) per wave times the idle part of that wave; 0 without waves and for a streaming kernel."""
        if not self.waves or self.streaming:
            return 0.0
        return max(self.time_us - overhead_us, 0.0) * (1.0 - self.tail_fill) / self.waves

    def to_dict(self) -> dict:
        """Plain dict for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class Prediction:
    """Predicted launches of a list of ops, per-op times and the total, on one GPU and dtype."""

    gpu: str
    dtype: str
    launches: list[KernelLaunch]
    op_times_us: np.ndarray  # GPU time per op (its kernels back to back)
    total_us: float
    host_overhead_us: np.ndarray  # CPU time per op when an eager op is timed alone (added by isolated_us)
    fallback: str | None = None  # which older kernel table stood in for a missing one (gpusim.kernels.kernel_table)

    def main_launches(self) -> list[KernelLaunch]:
        """The longest launch of each op (its main kernel), in op order."""
        main: dict[int, KernelLaunch] = {}
        for k in self.launches:
            if k.op_index not in main or k.time_us > main[k.op_index].time_us:
                main[k.op_index] = k
        return [main[i] for i in range(len(self.op_times_us))]

    @property
    def isolated_us(self) -> np.ndarray:
        """Per op: what CUDA events around one eager PyTorch call measure (host overhead + GPU time)."""
        return self.op_times_us + self.host_overhead_us

    @property
    def gpu_us(self) -> np.ndarray:
        """Per op: the GPU time of its kernels only, what a profiler's kernel durations sum to."""
        return self.op_times_us

    def to_dict(self) -> dict:
        """Plain dict for JSON output."""
        return {
            "gpu": self.gpu,
            "dtype": self.dtype,
            "total_us": self.total_us,
            "fallback": self.fallback,
            "launches": [k.to_dict() for k in self.launches],
        }


def device_vector(spec: GpuSpec, dtype: str) -> np.ndarray:
    """The engine's per-GPU vector (gpusim.engine.DEVICE_COLUMNS) for dtype at the sustained clock."""
    tensor = spec.uses_tensor_cores(dtype)
    return device_array(
        sms=spec.sm_count,
        simt_rate=spec.peak_flops_per_us("fp32" if tensor else dtype),
        tensor_rate=spec.peak_flops_per_us(dtype) if tensor else 0.0,
        dram_bw=spec.dram_bytes_per_us(),
        l2_bytes=spec.device.l2_cache_mb * 2**20,
        issue=spec.fp32_issue_ratio,
        activations_per_us=spec.row_activations_per_us(),
        page_bytes=spec.row_activation.page_bytes if spec.row_activation else 0.0,
    )


class EngineInputs(NamedTuple):
    """What the engine needs for one GPU and dtype."""

    table: np.ndarray  # tile table (gpusim.engine.TILE_COLUMNS)
    limits: np.ndarray  # per-SM limits (gpusim.occupancy.limits_vector)
    device: np.ndarray  # per-GPU vector (gpusim.engine.DEVICE_COLUMNS)
    consts: np.ndarray  # calibrated constants (gpusim.calibration.CONSTANT_NAMES)


def engine_inputs(spec: GpuSpec, dtype: str) -> EngineInputs:
    """The tile table, limits, device vector and constants that the engine needs for spec and dtype."""
    _, table = gemm_tiles(spec, dtype)
    return EngineInputs(table, limits_vector(spec), device_vector(spec, dtype), constants_vector(spec.architecture))


class LoweredOps:
    """Ops lowered once for one GPU and dtype; `run` prices them for any constants vector.

    Calibration calls `op_times` many times with trial constants; `predict` runs it once.
    `cached_plans` (per op, default 0) is the number of cuDNN plans the measuring process had
    cached, for the PyTorch 2.1 host cost of convs timed alone (validation/harness.py)."""

    def __init__(
        self,
        ops: Sequence[Op],
        spec: GpuSpec,
        dtype: str,
        allow_split_k: bool = True,
        cached_plans: Sequence[int] | None = None,
    ) -> None:
        check_dtype_on(dtype, spec)
        self.ops, self.spec, self.dtype, self.allow_split_k = list(ops), spec, dtype, allow_split_k
        self.fallback = kernel_table(spec).fallback
        self.cached_plans = np.zeros(len(self.ops)) if cached_plans is None else np.asarray(cached_plans, np.float64)
        self.elem = DTYPE_BYTES[dtype]
        target = Target(
            dtype,
            self.elem,
            not spec.uses_tensor_cores(dtype),
            spec.arch.fused_winograd_tiles,
            spec.sm_count,
            spec.limits.max_threads_per_sm,
            spec.arch.tensor_cores[dtype].shape if spec.uses_tensor_cores(dtype) else (),
            round(10 * float(spec.device.compute_capability)),
        )
        # (op index, algorithm index, algorithm name, problem), in launch order
        self.entries = [
            (i, a, algo.name, prob)
            for i, op in enumerate(self.ops)
            for a, algo in enumerate(lower(op, target))
            for prob in algo.problems
        ]
        self.gemm_at = np.array([e for e, x in enumerate(self.entries) if isinstance(x[3], GemmProblem)], np.int64)
        self.stream_at = np.array([e for e, x in enumerate(self.entries) if isinstance(x[3], StreamProblem)], np.int64)
        self.fused_at = np.array([e for e, x in enumerate(self.entries) if isinstance(x[3], FusedProblem)], np.int64)
        gp = [self.entries[e][3] for e in self.gemm_at]
        sp = [self.entries[e][3] for e in self.stream_at]
        self.gemm_cols = np.array([(g.m, g.n, g.k, g.batch) for g in gp], np.int64).reshape(-1, 4).T.copy()
        self.gemm_bytes = np.array([g.dram_bytes for g in gp], np.float64)
        self.gemm_use = np.array([g.use for g in gp], np.int64)
        self.gemm_k_major = np.array([g.k_major_rows for g in gp], np.int64)
        self.gemm_scale_index = np.array(
            [CONSTANT_NAMES.index(_RATE_SCALES[g.label]) if g.label in _RATE_SCALES else -1 for g in gp], np.int64
        )
        self.stream_cols = (
            np.array([(s.work, s.threads, s.work_per_thread) for s in sp], np.int64).reshape(-1, 3).T.copy()
        )
        self.stream_bytes = np.array([s.bytes_moved for s in sp], np.float64)
        self.stream_fraction = np.array([s.dram_fraction for s in sp], np.float64)
        self.stream_flops = np.array([s.flops for s in sp], np.float64)
        self.entry_op = np.array([x[0] for x in self.entries], np.int64)
        keys = {}
        self.entry_algo = np.array([keys.setdefault((x[0], x[1]), len(keys)) for x in self.entries], np.int64)
        self.algo_op = np.array([k[0] for k in keys], np.int64)
        self.host_index = np.array([CONSTANT_NAMES.index(op.host_overhead) for op in self.ops], np.int64)
        self.table, self.limits, self.device, self.consts = engine_inputs(spec, dtype)

    def run(
        self, consts: np.ndarray | None = None
    ) -> tuple[GemmLaunches | None, StreamLaunches | None, StreamLaunches | None]:
        """Engine results (GEMM, stream and fused launches; None where the ops have none) for a constants
        vector (default: the calibrated one)."""
        c = self.consts if consts is None else consts
        gemm: GemmLaunches | None = None
        stream: StreamLaunches | None = None
        fused = self._fused(c) if len(self.fused_at) else None
        if len(self.gemm_at):
            gemm = self._gemms(c)
        if len(self.stream_at):
            stream = self._streams(c)
        return gemm, stream, fused

    def _gemms(
        self, c: np.ndarray, at: np.ndarray | None = None, launched_as: tuple[np.ndarray, np.ndarray] | None = None
    ) -> GemmLaunches:
        """gemm_select over the GEMMs at positions `at` of gemm_at (default: all), each choosing its launch or
        priced as `launched_as` gives it."""
        sel = slice(None) if at is None else at
        scale = np.where(self.gemm_scale_index >= 0, c[np.maximum(self.gemm_scale_index, 0)], 1.0)
        return gemm_select(
            *(col[sel] for col in self.gemm_cols),
            self.gemm_bytes[sel],
            scale[sel],
            self.elem,
            self.table,
            self.limits,
            self.device,
            c,
            self.allow_split_k,
            self.gemm_use[sel],
            self.gemm_k_major[sel],
            launched_as=launched_as,
        )

    def _kernel_name(self, tile: TileDescription, prob: GemmProblem) -> str:
        """The name the library prints for `tile` running `prob` (its rows 16-byte aligned or not)."""
        return tile.name(self.spec, self.dtype, prob.layout, vector_rows=prob.k * self.elem % 16 == 0)

    def single_gemm(self) -> np.ndarray:
        """Per op, whether it is one GEMM launch and nothing else (linear, bmm): its main kernel is that GEMM."""
        one_entry = np.bincount(self.entry_op, minlength=len(self.ops)) == 1
        is_gemm = np.zeros(len(self.ops), bool)
        is_gemm[self.entry_op[self.gemm_at]] = True
        return one_entry & is_gemm

    def as_launched(
        self, kernels: Sequence[str], grids: Sequence[int | None], consts: np.ndarray | None = None
    ) -> np.ndarray:
        """Per op, the GPU time of its GEMM priced as the library launched it: the kernel of that name in
        this GPU's table for the GEMM's use, split K-wise by grid / (output tiles x batch). NaN where the op
        is not a single GEMM, the name is not in the table for its use, the grid is not recorded or is not
        a whole number of the kernel's tiles (persistent kernels), or the kernel cannot run."""
        c = self.consts if consts is None else consts
        out = np.full(len(self.ops), np.nan)
        descs, _ = gemm_tiles(self.spec, self.dtype)
        single = self.single_gemm()
        gemm_pos = {int(self.entry_op[e]): pos for pos, e in enumerate(self.gemm_at)}
        picked, tiles, splits = [], [], []
        for i, (kernel, grid) in enumerate(zip(kernels, grids)):
            if not single[i] or not grid:
                continue
            pos = gemm_pos[i]
            prob: GemmProblem = self.entries[self.gemm_at[pos]][3]
            match = [
                j
                for j, d in enumerate(descs)
                if d.uses & prob.use and not d.persistent and self._kernel_name(d, prob) == kernel
            ]
            if not match:
                continue
            d = descs[match[0]]
            (cm, cn), (m, n, _, batch) = d.cluster, self.gemm_cols[:, pos]
            out_tiles = output_tiles(m, n, batch, d.bm, d.bn, cm, cn, self.limits[LIMIT_GRID_YZ])
            if grid % out_tiles:
                continue
            picked.append(pos)
            tiles.append(match[0])
            splits.append(grid // out_tiles)
        if not picked:
            return out
        at = np.array(picked, np.int64)
        gemm = self._gemms(c, at, (np.array(tiles, np.int64), np.array(splits, np.int64)))
        out[self.entry_op[self.gemm_at[at]]] = gemm.time_us
        return out

    def _fused(self, c: np.ndarray) -> StreamLaunches:
        """Every fused kernel (FusedProblem) through the engine's wave model: its waves at the tensor-core
        (or CUDA-core) rate with the calibrated efficiency, at least its compulsory DRAM traffic (as a GEMM's
        floor), plus the launch overhead."""
        sms = int(self.device[D_SMS])
        cols = [np.zeros(len(self.fused_at), np.int64) for _ in range(4)] + [
            np.zeros(len(self.fused_at)) for _ in range(2)
        ]
        for pos, e in enumerate(self.fused_at):
            f: FusedProblem = self.entries[e][3]
            unit_rate = self.device[D_TENSOR_RATE if f.tensor else D_SIMT_RATE]
            peak = self.spec.peak_flops_per_us(f.rate_dtype) if f.rate_dtype else unit_rate
            if f.tensor:
                rate, dram = peak / f.mma_passes * c[C_TENSOR_EFF], c[C_TENSOR_DRAM]
            else:
                rate, dram = peak * c[C_SIMT_EFF], c[C_DRAM_EFF]
            b, lim, waves, tail, busy = launch_waves(
                f.grid, f.threads, f.regs, f.smem, f.flops / f.grid, 0.0, rate / sms,
                self.device[D_DRAM_BW] * dram, self.limits, sms, c,
            )  # fmt: skip
            floor = f.dram_bytes / (self.device[D_DRAM_BW] * dram)
            for col, value in zip(cols, (f.grid, b, lim, waves, tail, max(busy, floor) + c[C_OVERHEAD])):
                col[pos] = value
        return StreamLaunches(*cols)

    def _streams(self, c: np.ndarray) -> StreamLaunches:
        """stream_launch over every streaming kernel. Memory-bound ops' kernels (gpusim.memory_ops: those
        with their own achieved DRAM fraction) move their bytes at that fraction, and without the per-wave
        fixed time: their CTAs retire one by one, with no tile epilogue to wait for."""
        work, threads, per_thread = self.stream_cols
        own = self.stream_fraction > 0
        moved = self.stream_bytes * np.where(own, c[C_DRAM_EFF] / np.where(own, self.stream_fraction, 1.0), 1.0)
        no_waves = c.copy()
        no_waves[C_WAVE_LATENCY] = 0.0
        out = None
        for mask, consts in ((~own, c), (own, no_waves)):
            if not mask.any():
                continue
            part = stream_launch(
                work[mask], moved[mask], self.stream_flops[mask], threads[mask], per_thread[mask], 32,
                self.limits, self.device, consts,
            )  # fmt: skip
            if out is None:
                out = tuple(np.zeros(len(moved), col.dtype) for col in part)
            for col, values in zip(out, part):
                col[mask] = values
        return StreamLaunches(*out)

    def _choose(
        self, gemm: GemmLaunches | None, stream: StreamLaunches | None, fused: StreamLaunches | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(time per entry, chosen-entry mask, time per op): the fastest algorithm of each op is kept."""
        t = np.zeros(len(self.entries))
        if gemm is not None:
            t[self.gemm_at] = gemm.time_us
        if stream is not None:
            t[self.stream_at] = stream.time_us
        if fused is not None:
            t[self.fused_at] = fused.time_us
        algo_t = np.bincount(self.entry_algo, weights=t, minlength=len(self.algo_op))
        best = np.full(len(self.ops), np.inf)
        np.minimum.at(best, self.algo_op, algo_t)
        if not np.isfinite(best).all():  # every algorithm's CTA exceeds a per-SM limit: no finite latency
            op = self.ops[int(np.flatnonzero(~np.isfinite(best))[0])]
            raise OpError(
                f"{self.spec.path}: no kernel for {op.kind} op {op.name or '(unnamed)'} fits one SM "
                f"(threads, registers or shared memory per block exceed its limits); check the spec's sm_limits"
            )
        first_best = np.full(len(self.ops), -1)
        for a in np.flatnonzero(algo_t == best[self.algo_op]):  # ties: the first algorithm
            if first_best[self.algo_op[a]] < 0:
                first_best[self.algo_op[a]] = a
        return t, first_best[self.entry_op] == self.entry_algo, best

    def op_times(self, consts: np.ndarray | None = None) -> np.ndarray:
        """Predicted GPU microseconds per op (fastest algorithm) for a constants vector."""
        return self._choose(*self.run(consts))[2]

    def host_overhead(self, consts: np.ndarray | None = None) -> np.ndarray:
        """Host overhead per op (used when an op is timed alone) for a constants vector."""
        c = self.consts if consts is None else consts
        return c[self.host_index] + c[_PLAN_CACHE_INDEX] * self.cached_plans

    def predict(self, consts: np.ndarray | None = None) -> Prediction:
        """Full prediction with every chosen launch described (constants default to the calibrated ones)."""
        gemm, stream, fused = self.run(consts)
        t, chosen, best = self._choose(gemm, stream, fused)
        tiles, _ = gemm_tiles(self.spec, self.dtype)
        rows: dict[int, tuple[str, int, StreamLaunches | GemmLaunches, int]] = {}  # kernel, threads, launches, pos
        for pos, e in enumerate(self.gemm_at):
            j = gemm.tile[pos]
            prob = self.entries[e][3]
            label, layout = prob.label, prob.layout
            name = self._kernel_name(tiles[j], prob)
            rows[e] = (name if label == "gemm" or not layout else f"{label}[{name}]", tiles[j].threads, gemm, pos)
        for pos, e in enumerate(self.stream_at):
            s = self.entries[e][3]
            rows[e] = (f"{s.label}_kernel", s.threads, stream, pos)
        for pos, e in enumerate(self.fused_at):
            f = self.entries[e][3]
            rows[e] = (f.kernel, f.threads, fused, pos)
        launches = []
        for e in np.flatnonzero(chosen):
            i, _, algo, _ = self.entries[e]
            kernel, threads, res, pos = rows[e]
            launches.append(
                KernelLaunch(
                    op_index=int(i),
                    op_name=self.ops[i].name,
                    op_kind=self.ops[i].kind,
                    algorithm=algo,
                    kernel=kernel,
                    grid=int(res.grid[pos]),
                    threads=int(threads),
                    ctas_per_sm=int(res.ctas_per_sm[pos]),
                    limiter="none" if res.limiter[pos] == INVALID else LIMITERS[res.limiter[pos]],
                    waves=int(res.waves[pos]),
                    tail_fill=float(res.tail[pos]),
                    time_us=float(t[e]),
                    split_k=int(res.split[pos]) if isinstance(res, GemmLaunches) else 1,
                    streaming=res is stream,
                )
            )
        return Prediction(
            gpu=self.spec.name,
            dtype=self.dtype,
            launches=launches,
            op_times_us=best,
            total_us=float(best.sum()),
            host_overhead_us=self.host_overhead(consts),
            fallback=self.fallback,
        )


def predict(ops: Op | Sequence[Op], spec: GpuSpec | str, dtype: str = "fp16", allow_split_k: bool = True) -> Prediction:
    """Predict every kernel launch of `ops` on `spec` in `dtype`; launches keep the ops' order.

    Where an op has several algorithms (conv: implicit GEMM or Winograd), the fastest is kept."""
    check_dtype(dtype)
    op_list = [ops] if isinstance(ops, Op) else list(ops)
    return LoweredOps(op_list, load_spec(spec), dtype, allow_split_k).predict()


def launch_overhead_us(spec: GpuSpec | str) -> float:
    """The per-kernel launch overhead the model adds for spec's architecture family."""
    return constants_for(load_spec(spec).architecture).launch_overhead_us
