"""The plan file: a pydantic model saved as JSON (written atomically), read back by `wavecut apply` and `snap`."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

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

    model_config = ConfigDict(allow_inf_nan=False)
    name: str
    full_width: int = Field(ge=1)
    width: int = Field(ge=1)
    kept: list[int]
    producers: list[str]
    consumers: list[str]
    locked: str = ""
    importance_kept: float  # fraction of the group's importance

    @model_validator(mode="after")
    def _kept_fits(self) -> GroupWidth:
        """width <= full_width, and kept is `width` distinct channel indices in 0..full_width-1, ascending."""
        if self.width > self.full_width:
            raise ValueError(f"width {self.width} exceeds full_width {self.full_width}")
        if len(self.kept) != self.width:
            raise ValueError(f"kept lists {len(self.kept)} channels, width is {self.width}")
        if any(b <= a for a, b in zip(self.kept, self.kept[1:])):
            raise ValueError("kept must list distinct channel indices in ascending order")
        if self.kept and (self.kept[0] < 0 or self.kept[-1] >= self.full_width):
            raise ValueError(f"kept indices must be in 0..{self.full_width - 1}")
        return self


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
    input_shape: list[PositiveInt] = Field(min_length=1, max_length=8)
    batch: int = Field(ge=1)
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
            # strict at the edge: in a plan file `width: true` or "64" is not a width
            return cls.model_validate_json(Path(path).read_bytes(), strict=True)
        except FileNotFoundError:
            raise WavecutError(f"{path}: no such plan file") from None
        except OSError as exc:
            raise WavecutError(f"{path}: cannot read the plan file ({exc.strerror})") from None
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"]) or "(file)"
            msg = err["msg"].removeprefix("Value error, ")
            raise WavecutError(f"{path}: not a wavecut plan ({where}: {msg})") from None
