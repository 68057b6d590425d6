"""Sweep files (validation/sweeps/*.yaml): which ops to time, as data.

A case names an op kind the harness can time (validation.torch_calls: conv2d, linear, bmm, sdpa) or
depthwise, and its gpusim fields; any field may be a number, a list, or a range "A:B" / "A:B:STEP"
(inclusive), and a case expands to the product of its fields. `size` sets height = width (ops with
both); depthwise takes `channels`.
Whole networks are listed under `networks`: each forward is timed whole (the network format of
validation/networks.py), or, with `layers: true`, its conv and linear layers one by one (op rows).
"""

from __future__ import annotations

import itertools
from dataclasses import fields
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gpusim.errors import OpError, WavecutError
from gpusim.ops import Conv2d, Op
from validation.project_format import OP_CLASSES

SWEEP_DIR = Path(__file__).resolve().parent / "sweeps"
MeasureDtype = Literal["fp32", "tf32", "fp16", "bf16"]
FieldValue = int | str | list[int]


class SweepError(WavecutError):
    """A sweep name or file that cannot be used."""


NetworkDtype = Literal["fp32", "fp32-strict", "tf32", "amp-fp16", "amp-bf16", "fp16", "bf16"]


class NetworkCase(BaseModel):
    """A torchvision network timed whole, one forward per step (host wall time, as timm measures), in each
    precision of `dtypes` (default: the sweep's dtypes); with `layers`, its conv and linear layers are
    timed one by one instead."""

    model_config = ConfigDict(extra="forbid")
    model: str
    batch: int = Field(gt=0)
    size: int = Field(gt=0, description="input height = width")
    dtypes: list[NetworkDtype] = Field(default_factory=list)
    layers: bool = False


class Sweep(BaseModel):
    """One sweep file."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str
    dtypes: list[NetworkDtype] = Field(min_length=1, description="op cases: fp32, tf32, fp16, bf16 only")
    cases: list[dict[str, FieldValue]] = Field(default_factory=list)
    networks: list[NetworkCase] = Field(default_factory=list)

    @model_validator(mode="after")
    def _op_dtypes(self) -> Sweep:
        ops = bool(self.cases) or any(n.layers for n in self.networks)
        bad = [d for d in self.dtypes if d not in get_args(MeasureDtype)]
        if ops and bad:
            raise ValueError(f"{bad[0]!r} is a network precision; op cases allow {', '.join(get_args(MeasureDtype))}")
        return self


def shipped_sweeps() -> list[str]:
    """Names of the sweeps shipped in validation/sweeps/."""
    return sorted(p.stem for p in SWEEP_DIR.glob("*.yaml"))


def load_sweep(name_or_path: str | Path) -> Sweep:
    """A shipped sweep by name, or a sweep YAML file by path."""
    path = Path(name_or_path)
    if not path.exists():
        if path.suffix in (".yaml", ".yml") or str(name_or_path) not in shipped_sweeps():
            raise SweepError(
                f"--sweep: no sweep named or at {str(name_or_path)!r}; shipped: {', '.join(shipped_sweeps())}"
            )
        path = SWEEP_DIR / f"{name_or_path}.yaml"
    try:
        return Sweep.model_validate(yaml.safe_load(path.read_text()))
    except yaml.YAMLError:
        raise SweepError(f"{path}: not valid YAML") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        raise SweepError(f"{path}: field '{'.'.join(map(str, err['loc'])) or '(file)'}': {err['msg']}") from None


def expand_values(value: FieldValue, where: str) -> list[int]:
    """7 -> [7]; [1, 2] -> [1, 2]; '1:4' -> [1, 2, 3, 4]; '8:32:8' -> [8, 16, 24, 32]."""
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return value
    try:
        parts = [int(p) for p in value.split(":")]
    except ValueError:
        parts = []
    if len(parts) not in (2, 3) or parts[1] < parts[0] or (len(parts) == 3 and parts[2] < 1):
        raise SweepError(f"{where}: {value!r} is not a number, a list or a range A:B / A:B:STEP with A <= B")
    return list(range(parts[0], parts[1] + 1, parts[2] if len(parts) == 3 else 1))


def _fields_of(op: str) -> tuple[type[Op], dict[str, tuple[str, ...]]]:
    """The op class for a case's op, and which class fields each case key sets."""
    if op == "depthwise":
        return Conv2d, {
            "batch": ("batch",),
            "channels": ("in_channels", "out_channels", "groups"),
            "size": ("height", "width"),
            "height": ("height",),
            "width": ("width",),
            "kernel_size": ("kernel_size",),
            "stride": ("stride",),
            "padding": ("padding",),
            "dilation": ("dilation",),
        }
    cls = OP_CLASSES[op]
    keys = {f.name: (f.name,) for f in fields(cls) if f.name != "name"}
    return cls, keys | ({"size": ("height", "width")} if {"height", "width"} <= set(keys) else {})


def expand_case(case: dict[str, FieldValue], where: str) -> list[Op]:
    """All ops of one case (the product of its fields' values)."""
    op = case.get("op")
    if op not in (*OP_CLASSES, "depthwise"):
        raise SweepError(f"{where}: field 'op': {op!r} unknown; allowed: {', '.join((*OP_CLASSES, 'depthwise'))}")
    cls, keys = _fields_of(str(op))
    given = {k: v for k, v in case.items() if k != "op"}
    unknown = sorted(set(given) - set(keys))
    if unknown:
        raise SweepError(f"{where}: field '{unknown[0]}' unknown for {op}; allowed: {', '.join(keys)}")
    names = list(given)
    ops: list[Op] = []
    for combo in itertools.product(*(expand_values(given[k], f"{where}.{k}") for k in names)):
        kwargs = {target: v for k, v in zip(names, combo) for target in keys[k]}
        try:
            ops.append(cls(**kwargs))
        except (OpError, TypeError) as exc:
            raise SweepError(f"{where}: {exc}") from None
    return ops


def sweep_ops(sweep: Sweep) -> list[Op]:
    """Every op of the sweep's cases, in file order (networks excluded)."""
    return [op for i, case in enumerate(sweep.cases) for op in expand_case(case, f"{sweep.name}: cases[{i}]")]
