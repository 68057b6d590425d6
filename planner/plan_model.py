"""The plan file: a pydantic model saved as JSON (written atomically), read back by `wavecut apply` and `snap`."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pydantic import BaseModel, ValidationError

from gpusim.atomic_write import write_text_atomic
from gpusim.errors import WavecutError


def wavecut_version() -> str:
    """The installed wavecut version."""
    try:
        return version("wavecut")
    except PackageNotFoundError:
        return "unknown"


class GroupWidth(BaseModel):
    """One channel group: its layers, full and planned width, kept channel indices and importance kept."""

    name: str
    full_width: int
    width: int
    kept: list[int]
    producers: list[str]
    consumers: list[str]
    locked: str = ""
    importance_kept: float  # fraction of the group's importance


class LayerLatency(BaseModel):
    """One kernel launch before and after pruning: latency, waves and the last wave's fill."""

    name: str
    op: str
    before_us: float
    after_us: float
    waves_before: int
    waves_after: int
    tail_before: float
    tail_after: float


class Baseline(BaseModel):
    """A method the plan is compared with (or the plan itself): latency, channels and importance kept."""

    method: str
    keep_ratio: float | None = None
    latency_us: float | None = None  # None: this method cannot meet the budget
    channels: int | None = None
    importance: float | None = None  # fraction of the model's (prunable groups') importance


class Move(BaseModel):
    """What snapping did to one group."""

    group: str
    before: int
    after: int
    latency_change_us: float
    reason: str


class Plan(BaseModel):
    """A pruning plan (or a snapped set of widths) for one model, input, GPU spec, batch, dtype and mode."""

    kind: str = "plan"  # "plan" (wavecut plan) or "snap" (wavecut snap)
    wavecut_version: str
    model: str
    model_fingerprint: str
    weights: str | None = None
    weights_sha256: str | None = None
    input_shape: list[int]
    batch: int
    dtype: str
    mode: str
    gpu: str
    gpu_spec: str
    gpu_spec_hash: str
    importance: str
    alignment: int
    min_width_rule: str
    budget: str | None = None
    budget_us: float | None = None
    baseline_latency_us: float
    planned_latency_us: float
    channels_full: int
    channels_kept: int
    importance_kept: float
    planning_s: float
    groups: list[GroupWidth]
    layers: list[LayerLatency]
    comparison: list[Baseline] = []
    moves: list[Move] = []

    def save(self, path: str | Path) -> Path:
        """Write the plan as JSON, atomically."""
        return write_text_atomic(path, self.model_dump_json(indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Read a plan file; a missing or malformed file is a one-line WavecutError."""
        try:
            return cls.model_validate_json(Path(path).read_text())
        except FileNotFoundError:
            raise WavecutError(f"{path}: no such plan file") from None
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise WavecutError(f"{path}: not a wavecut plan ({where}: {err['msg']})") from None
