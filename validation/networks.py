"""Whole-network timings: the CSV row schema, the reader and the metrics (validation/README.md).

A row is one network forward (model by torchvision name, batch, input size, precision, mode,
device) and its measured time. Predicting a row needs a traced model, which lives in planner;
validation never imports planner, so `score_networks` takes the predictor as a callable
(wavecut/networks_cmd.py supplies the planner-based one).
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpusim.errors import WavecutError
from validation.readers import DataError
from validation.score import GroupScore, _group, headline, signed_error_pct

# Precisions a row may name (gpusim.eager.PRECISIONS); timm's files write autocast as "amp_fp16".
ROW_DTYPES = ("fp32", "fp32-strict", "tf32", "amp-fp16", "amp-bf16", "fp16", "bf16")
MODES = ("eager", "fused")
TIMINGS = ("host_wall_step", "gpu_kernel")
# The columns `validate measure` writes for its `networks` sweep, in order.
NETWORK_COLUMNS = (
    "model",
    "batch",
    "img_size",
    "channels",
    "dtype",
    "mode",
    "device",
    "median_us",
    "p10_us",
    "p90_us",
    "repeats",
    "timing",
    "allow_tf32_matmul",
    "torch",
    "cuda",
)


class NetworkRow(BaseModel):
    """One measured network forward. time_us is the measurement (host wall time of one forward for
    timing = host_wall_step; summed kernel time for gpu_kernel)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    row: int = Field(description="row number in the file, the header being row 1")
    model: str = Field(min_length=1, description="torchvision model name")
    batch: int = Field(gt=0)
    img_size: int = Field(gt=0, description="input height = width")
    channels: int = Field(default=3, gt=0)
    dtype: str
    mode: str = "eager"
    device: str = Field(min_length=1)
    time_us: float = Field(gt=0)
    timing: str = "host_wall_step"
    allow_tf32_matmul: bool = False
    torch: str = ""


@dataclass(frozen=True)
class NetworkTimings:
    """The rows of one network timing file."""

    path: Path
    rows: list[NetworkRow]


def _cell(record: dict[str, str], *names: str) -> str | None:
    for name in names:
        value = (record.get(name) or "").strip()
        if value:
            return value
    return None


def _dtype(text: str, where: str) -> str:
    value = text.strip().lower().replace("_", "-")
    if value not in ROW_DTYPES:
        raise DataError(f"{where}: column 'dtype': {text!r} unknown; allowed: {', '.join(ROW_DTYPES)} (or amp_fp16)")
    return value


def _row(record: dict[str, str], number: int, where: str) -> NetworkRow:
    model = _cell(record, "torchvision_name", "model")
    time_ms = _cell(record, "step_time_ms")
    time_us = _cell(record, "median_us")
    if time_us is None and time_ms is None:
        raise DataError(f"{where}: no time: give 'median_us' (microseconds) or 'step_time_ms' (milliseconds)")
    values = {
        "row": number,
        "model": model,
        "batch": _cell(record, "batch"),
        "img_size": _cell(record, "img_size"),
        "channels": _cell(record, "channels") or 3,
        "dtype": _dtype(_cell(record, "dtype") or "", where),
        "mode": _cell(record, "mode") or "eager",
        "device": _cell(record, "device"),
        "time_us": float(time_us) if time_us is not None else float(time_ms) * 1000.0,
        "timing": _cell(record, "timing") or "host_wall_step",
        "allow_tf32_matmul": _cell(record, "allow_tf32_matmul") or False,
        "torch": _cell(record, "torch") or "",
    }
    for field, allowed in (("mode", MODES), ("timing", TIMINGS)):
        if values[field] not in allowed:
            raise DataError(f"{where}: column '{field}': {values[field]!r} unknown; allowed: {', '.join(allowed)}")
    try:
        return NetworkRow(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(map(str, err["loc"]))
        column = {"model": "model (or torchvision_name)", "time_us": "median_us"}.get(field, field)
        msg = "missing" if err["type"] == "missing" else err["msg"]
        raise DataError(f"{where}: column '{column}': {msg}") from None


def read_network_timings(path: str | Path) -> NetworkTimings:
    """Read a network timing CSV: the project's format (validation/README.md, written by `validate
    measure` for the `networks` sweep) or the converted timm files (../shared/data/measured/timm/)."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            records = list(csv.DictReader(f))
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror})") from None
    if not records:
        raise DataError(f"{path}: no rows")
    rows = []
    for i, record in enumerate(records, start=2):
        try:
            rows.append(_row(record, i, f"{path}: row {i}"))
        except ValueError as exc:  # float() of a time that is not a number
            raise DataError(f"{path}: row {i}: time: {exc}") from None
    return NetworkTimings(path, rows)


def model_family(model: str) -> str:
    """The family of a torchvision model name: the name up to its first size or variant token
    (resnet50 -> resnet, wide_resnet50_2 -> wide_resnet, efficientnet_v2_s -> efficientnet_v2,
    regnet_y_400mf -> regnet_y, convnext_tiny -> convnext, vit_b_16 -> vit)."""
    tokens = model.split("_")
    kept = [re.sub(r"\d.*$", "", tokens[0]) or tokens[0]]
    for token in tokens[1:]:
        if not re.fullmatch(r"v\d|[xy]", token):
            break
        kept.append(token)
    if kept[0] in ("wide",):
        kept.append(re.sub(r"\d.*$", "", tokens[1]))
    return "_".join(kept)


class NetworkSummary(BaseModel):
    """The metrics of one scored network file; percentages in percent."""

    rows: int
    mape: float
    median_ape: float
    p90_ape: float
    spearman: float | None
    by_device: dict[str, GroupScore]
    by_family: dict[str, GroupScore]


@dataclass(frozen=True)
class ScoredNetworks:
    """Per-row predictions next to the measurements, and the summary."""

    timings: NetworkTimings
    predicted_us: np.ndarray
    summary: NetworkSummary

    @property
    def measured_us(self) -> np.ndarray:
        """Measured time per row, microseconds."""
        return np.array([r.time_us for r in self.timings.rows])

    @property
    def error_pct(self) -> np.ndarray:
        """Signed error per row, percent of the measurement (positive: predicted too slow)."""
        return signed_error_pct(self.predicted_us, self.measured_us)


def summarize_networks(rows: list[NetworkRow], predicted_us: np.ndarray) -> NetworkSummary:
    """MAPE, median and p90 APE, Spearman, and the breakdown per device and per model family."""
    ape, overall = headline(predicted_us, np.array([r.time_us for r in rows]))
    by_device: dict[str, list[int]] = defaultdict(list)
    by_family: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_device[r.device].append(i)
        by_family[model_family(r.model)].append(i)
    return NetworkSummary(
        rows=len(rows),
        **overall,
        by_device={k: _group(ape, v) for k, v in by_device.items()},
        by_family={k: _group(ape, v) for k, v in sorted(by_family.items())},
    )


def score_networks(timings: NetworkTimings, predict: Callable[[NetworkRow], float]) -> ScoredNetworks:
    """Predict every row with `predict` (microseconds, the same kind of time as the row's `timing`)
    and score the predictions; a predictor's error names the row."""
    predicted = np.zeros(len(timings.rows))
    for i, row in enumerate(timings.rows):
        try:
            predicted[i] = predict(row)
        except DataError:
            raise
        except WavecutError as exc:
            raise DataError(f"{timings.path}: row {row.row}: {exc}") from None
    return ScoredNetworks(timings, predicted, summarize_networks(timings.rows, predicted))


def network_report(scored: ScoredNetworks) -> str:
    """report.md: the summary, then every row with its prediction and signed error (worst first)."""
    s = scored.summary
    rho = "-" if s.spearman is None else f"{s.spearman:.3f}"
    lines = [
        f"# Networks: {scored.timings.path.name}",
        "",
        f"{s.rows} rows: MAPE {s.mape:.1f}%, median APE {s.median_ape:.1f}%, p90 APE {s.p90_ape:.1f}%, Spearman {rho}",
        "",
        "| family | rows | MAPE | median APE |",
        "|---|---:|---:|---:|",
        *(f"| {k} | {g.rows} | {g.mape:.1f}% | {g.median_ape:.1f}% |" for k, g in s.by_family.items()),
        "",
        "| row | model | batch | size | dtype | device | measured ms | predicted ms | error |",
        "|---:|---|---:|---:|---|---|---:|---:|---:|",
    ]
    err = scored.error_pct
    for i in np.argsort(-np.abs(err)):
        r = scored.timings.rows[i]
        lines.append(
            f"| {r.row} | {r.model} | {r.batch} | {r.img_size} | {r.dtype} | {r.device} | "
            f"{r.time_us / 1e3:.2f} | {scored.predicted_us[i] / 1e3:.2f} | {err[i]:+.1f}% |"
        )
    return "\n".join(lines)
