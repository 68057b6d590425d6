"""Score the simulator against measurements: per-row error and the summary metrics.

gpusim.predict is called once per (GPU, dtype) with every op of that group (it is vectorised).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel

from gpusim.errors import SpecError
from gpusim.predict import LoweredOps, Prediction
from gpusim.spec import GpuSpec, load_spec
from validation.harness import cached_conv_plans
from validation.readers import DataError, Measurement, Timings

# Which prediction a row's timing is compared with (validation.readers.TIMINGS): an op timed alone with
# CUDA events includes the host overhead of the call; kernel durations are GPU time only. A single op
# timed as a whole host-synchronised step is the op timed alone.
PREDICTION_FOR_TIMING: dict[str, str] = {
    "op_wall": "isolated_us",
    "gpu_kernel": "gpu_us",
    "host_wall_step": "isolated_us",
}


def predicted_for(pred: Prediction, timing: str) -> np.ndarray:
    """Per op, the prediction of the same kind as `timing` (PREDICTION_FOR_TIMING)."""
    return getattr(pred, PREDICTION_FOR_TIMING[timing])


class GroupScore(BaseModel):
    """Error over a subset of rows (one device or one op kind); percentages in percent."""

    rows: int
    mape: float
    median_ape: float


class Summary(BaseModel):
    """The metrics of one scored file; percentages in percent. grid_match: percent of the rows with a
    recorded main-kernel grid whose predicted CTA count equals it (absent when no grid is recorded)."""

    rows: int
    mape: float
    median_ape: float
    p90_ape: float
    spearman: float | None
    by_device: dict[str, GroupScore]
    by_op: dict[str, GroupScore]
    by_dtype: dict[str, GroupScore]
    by_timing: dict[str, GroupScore]
    grid_match: float | None = None
    grid_rows: int = 0


@dataclass(frozen=True)
class Scored:
    """Per-row predictions next to the measurements, and the summary."""

    timings: Timings
    predicted_us: np.ndarray
    predicted_grid: np.ndarray
    predicted_kernel: list[str]
    gpu: list[str]
    summary: Summary
    gpu_override: str | None = None  # the spec every row was scored on (`--gpu`), if one was given

    @property
    def measured_us(self) -> np.ndarray:
        """Measured latency per row, microseconds."""
        return np.array([m.latency_us for m in self.timings.measurements])

    @property
    def error_pct(self) -> np.ndarray:
        """Signed error per row, percent of the measurement (positive: predicted too slow)."""
        return signed_error_pct(self.predicted_us, self.measured_us)


def unknown_device(timings: Timings, m: Measurement) -> DataError:
    """The one-line error for a device name that no spec answers to."""
    return DataError(
        f"{timings.path}: row {m.row}: unknown GPU {m.device!r}: add a spec whose aliases include "
        f"{m.device!r} (run `wavecut specs new --from-device` on that GPU, or copy a file in "
        f"hw_specs/devices/; see hw_specs/README.md), or pass --gpu NAME to score every row on one spec"
    )


def resolve_specs(timings: Timings, gpu: str | None = None) -> dict[str, GpuSpec]:
    """The spec for every device name in the file (all `gpu` when given), by spec name or alias."""
    if gpu is not None:
        spec = load_spec(gpu)
        return {m.device: spec for m in timings.measurements}
    specs: dict[str, GpuSpec] = {}
    for m in timings.measurements:
        if m.device not in specs:
            try:
                specs[m.device] = load_spec(m.device)
            except SpecError:
                raise unknown_device(timings, m) from None
    return specs


def _group(ape: np.ndarray, rows: list[int]) -> GroupScore:
    sub = ape[rows]
    return GroupScore(rows=len(rows), mape=float(sub.mean()), median_ape=float(np.median(sub)))


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:  # a constant side has no rank order
        return None
    from scipy.stats import spearmanr

    rho = float(spearmanr(a, b).statistic)
    return None if np.isnan(rho) else rho


def signed_error_pct(predicted_us: np.ndarray, measured_us: np.ndarray) -> np.ndarray:
    """Signed error per row, percent of the measurement (positive: predicted too slow)."""
    return (predicted_us - measured_us) / measured_us * 100.0


def headline(predicted_us: np.ndarray, measured_us: np.ndarray) -> tuple[np.ndarray, dict[str, float | None]]:
    """Absolute percentage error per row, and MAPE, median and p90 APE and Spearman over all rows."""
    ape = np.abs(signed_error_pct(predicted_us, measured_us))
    return ape, {
        "mape": float(ape.mean()),
        "median_ape": float(np.median(ape)),
        "p90_ape": float(np.percentile(ape, 90)),
        "spearman": _spearman(predicted_us, measured_us),
    }


def summarize(timings: Timings, predicted_us: np.ndarray, predicted_grid: np.ndarray) -> Summary:
    """MAPE, median and p90 APE, Spearman, per-device and per-op breakdown, and grid agreement."""
    ms = timings.measurements
    ape, overall = headline(predicted_us, np.array([m.latency_us for m in ms]))
    groups: dict[str, dict[str, list[int]]] = {k: defaultdict(list) for k in ("device", "op", "dtype", "timing")}
    for i, m in enumerate(ms):
        for key, value in (("device", m.device), ("op", m.op.kind), ("dtype", m.dtype), ("timing", m.timing)):
            groups[key][value].append(i)
    with_grid = [i for i, m in enumerate(ms) if m.grid is not None]
    match = sum(int(predicted_grid[i]) == ms[i].grid for i in with_grid)
    return Summary(
        rows=len(ms),
        **overall,
        **{f"by_{key}": {k: _group(ape, v) for k, v in g.items()} for key, g in groups.items()},
        grid_match=100.0 * match / len(with_grid) if with_grid else None,
        grid_rows=len(with_grid),
    )


def score(timings: Timings, gpu: str | None = None, recorded_clock: bool = False) -> Scored:
    """Predict every measured op (on its device's spec, or on `gpu` for all) and score the predictions.

    With `recorded_clock`, a row that recorded its SM clock is predicted at that clock instead of
    the spec's sustained clock: what is left is the model's error, not the clock's."""
    specs = resolve_specs(timings, gpu)
    ms = timings.measurements
    groups: dict[tuple[str, str, str, float | None], list[int]] = defaultdict(list)
    for i, m in enumerate(ms):
        groups[(specs[m.device].path, m.dtype, m.timing, m.sm_clock_mhz if recorded_clock else None)].append(i)
    predicted = np.zeros(len(ms))
    grid = np.zeros(len(ms), dtype=np.int64)
    kernel = [""] * len(ms)
    plans = cached_conv_plans(ms)
    for (_, dtype, timing, clock), rows in groups.items():
        spec = specs[ms[rows[0]].device]
        pred = LoweredOps(
            [ms[i].op for i in rows],
            spec if clock is None else spec.at_clock(clock),
            dtype,
            cached_plans=[plans[i] for i in rows],
        ).predict()
        predicted[rows] = predicted_for(pred, timing)  # the same kind of time as the row's
        for row, launch in zip(rows, pred.main_launches()):
            grid[row], kernel[row] = launch.grid, launch.kernel
    return Scored(
        timings=timings,
        predicted_us=predicted,
        predicted_grid=grid,
        predicted_kernel=kernel,
        gpu=[specs[m.device].name for m in ms],
        summary=summarize(timings, predicted, grid),
        gpu_override=gpu,
    )
