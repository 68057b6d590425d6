"""Efficiency constants per architecture family, fitted on recorded timings (validation/calibrate.py).

A family without its own file uses the nearest family that has one (by the order in
hw_specs/calibration/families.yaml), so a new GPU is predicted from its spec alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache, lru_cache
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

from gpusim.errors import SpecError
from gpusim.spec import load_arch
from hw_specs import CALIBRATION_DIR, CC_DIR

# Fit groups (validation/calibrate.py): shared by all GPUs, then the deep-K operand strips on the linear
# sets, then refined per architecture family (cuDNN's kernels on conv data; tensor-core GEMMs on
# tensor-core data).
SHARED, STRIP, FAMILY, TENSOR = "shared", "strip", "family", "tensor"


def _constant(
    start: float, description: str, fit: tuple[str, ...] = (), off: float | None = None, **bounds: float
) -> Any:
    """A constant's field: its bounds (ge/gt/le), where every fit starts, the fit groups it is in, and
    `off`, the value at which the term it sets has no effect (validation.crossval --without; None: the
    constant scales something every prediction needs, so it cannot be switched off)."""
    return Field(description=description, json_schema_extra={"start": start, "fit": list(fit), "off": off}, **bounds)


class Constants(BaseModel):
    """The model's free constants (see docs/architecture.md for what each one does): the one place their
    names, bounds, fit starting points and fit groups are written.

    Starting points are GPU_FACTS.md's round numbers (85% of DRAM peak, ~80-90% of math peak, 3-6 us
    launch overhead); the constants no data constrains keep them: the per-kernel launch overhead, which
    single-op timings cannot tell apart from the host overhead of the call (fitting both traded one for
    the other and gave 14 us per kernel, which would charge a 100-kernel network 1.4 ms of launches), and
    the host time of a cuDNN conv call: every shared conv row runs for about a millisecond on the GPU, so
    1.9 to 31 us of it move their MAPE by 0.2-0.6 points while the plan-cache cost takes up the
    difference (a refit on 2026-12-04 ran it to 1.9 us, which a conv call never takes); it starts, and
    stays, at the ~30 us NeuSight's first conv rows spend on the host before the plan cache grows
    (validation/harness.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    launch_overhead_us: float = _constant(4.0, "framework + launch time added to every kernel", ge=0)
    simt_efficiency: float = _constant(0.85, "sustained fraction of FP32 CUDA-core peak", (SHARED,), gt=0, le=1.5)
    tensor_efficiency: float = _constant(0.8, "sustained fraction of tensor-core peak", (TENSOR,), gt=0, le=1.5)
    tensor_dram_efficiency: float = _constant(
        0.85,
        "fraction of DRAM peak a tensor-core GEMM streams its operands at (its DRAM floor: small-M GEMMs)",
        (TENSOR,),
        gt=0,
        le=1.0,
    )
    tile_intensity_half: float = _constant(
        12.0, "tile efficiency = I / (I + this), I = 2*BM*BN/(BM+BN)", (SHARED,), off=0.0, ge=0
    )
    dram_efficiency: float = _constant(0.85, "achievable fraction of DRAM peak", (SHARED,), gt=0, le=1.0)
    sm_bandwidth_cap: float = _constant(4.0, "one SM's bandwidth at most this times its fair share", gt=0)
    wave_latency_us: float = _constant(
        1.0, "fixed time of every wave: pipeline fill and epilogue", (SHARED,), off=0.0, ge=0
    )
    winograd_fused_efficiency: float = _constant(
        0.6, "math rate of fused Winograd GEMMs vs plain", (SHARED, FAMILY), gt=0, le=1.5
    )
    winograd_fused_fixed_channels: float = _constant(
        16.0,
        "per-CTA fixed work of fused Winograd (output transform, prologue), in input channels",
        (SHARED,),
        off=0.0,
        ge=0,
    )
    winograd_nonfused_efficiency: float = _constant(
        0.8, "math rate of non-fused Winograd GEMMs", (SHARED, FAMILY), gt=0, le=1.5
    )
    implicit_gemm_efficiency: float = _constant(
        1.0, "math rate of cuDNN FP32 implicit-GEMM conv kernels", (FAMILY,), gt=0, le=1.5
    )
    strided_dram_efficiency: float = _constant(
        0.4,
        "fraction of DRAM peak for cuBLAS 'tn' operand strips read in 32-byte sectors",
        (STRIP,),
        off=1e9,  # strips take no time: the whole term is off
        gt=0,
        le=1.0,
    )
    cta_drift_fraction: float = _constant(
        0.005,
        "spread of a wave's CTAs along K, as a fraction of the wave's operand strips",
        (STRIP,),
        off=1e-12,  # only the per-wave re-reads remain
        gt=0,
    )
    drift_waves: float = _constant(30.0, "waves over which that spread builds up", (STRIP,), gt=0)
    l2_miss_sharpness: float = _constant(
        3.0, "exponent of the L2 miss curve in (spread footprint / L2 size)", (STRIP,), gt=0
    )
    host_overhead_conv_us: float = _constant(30.0, "CPU time of one eager cuDNN conv call timed alone", ge=0)
    host_overhead_gemm_us: float = _constant(
        20.0, "CPU time of one eager cuBLAS linear/bmm call timed alone", (SHARED,), ge=0
    )
    host_overhead_memory_us: float = _constant(10.0, "CPU time of one eager memory-bound op timed alone", ge=0)
    cudnn_plan_cache_us_per_entry: float = _constant(
        0.05,
        "extra CPU time of a conv call per cached cuDNN plan, PyTorch 2.1 only (validation/harness.py)",
        (SHARED, FAMILY),
        off=0.0,
        ge=0,
    )


def starting_point() -> dict[str, float]:
    """Where every fit starts, by constant name (from the Constants schema)."""
    return {n: f.json_schema_extra["start"] for n, f in Constants.model_fields.items()}  # type: ignore[index]


def fit_group(group: str) -> tuple[str, ...]:
    """The constants a fit group fits, in CONSTANT_NAMES order (from the Constants schema)."""
    return tuple(n for n, f in Constants.model_fields.items() if group in f.json_schema_extra["fit"])  # type: ignore[index]


def switchable() -> dict[str, float]:
    """The constants whose term can be switched off, with the value that switches it off (the schema's `off`)."""
    offs = {n: f.json_schema_extra["off"] for n, f in Constants.model_fields.items()}  # type: ignore[index]
    return {n: v for n, v in offs.items() if v is not None}


def bounds(name: str) -> tuple[float, float]:
    """(lowest, highest) value the Constants schema accepts for a constant (open or closed ends alike)."""
    low, high = -np.inf, np.inf
    for rule in Constants.model_fields[name].metadata:
        low = max(low, getattr(rule, "ge", getattr(rule, "gt", -np.inf)))
        high = min(high, getattr(rule, "le", getattr(rule, "lt", np.inf)))
    return low, high


class Calibration(BaseModel):
    """One family's calibration file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    family: str
    fitted_on: list[str] = Field(default_factory=list)
    fit_command: str = ""
    constants: dict[str, float]


# Order of the fields in the vector the Numba engine reads.
CONSTANT_NAMES: tuple[str, ...] = tuple(Constants.model_fields)


@lru_cache(maxsize=1)
def _families() -> dict:
    return yaml.safe_load((CALIBRATION_DIR / "families.yaml").read_text())


def family_order() -> tuple[str, ...]:
    """Architecture families from oldest to newest (hw_specs/calibration/families.yaml)."""
    return tuple(_families()["order"])


@lru_cache(maxsize=1)
def _family_majors() -> dict[str, frozenset[int]]:
    majors: dict[str, set[int]] = {}
    for path in CC_DIR.glob("sm_*.yaml"):
        cc = f"{path.stem[3:-1]}.{path.stem[-1]}"
        majors.setdefault(load_arch(cc).family, set()).add(int(path.stem[3:-1]))
    return {f: frozenset(m) for f, m in majors.items()}


def family_cc_majors(family: str) -> frozenset[int]:
    """The compute-capability majors of a family's GPUs, read off hw_specs/compute_capability (empty when
    no compute-capability file names the family)."""
    return _family_majors().get(family, frozenset())


def _read(family: str) -> Calibration | None:
    path = CALIBRATION_DIR / f"{family}.yaml"
    if not path.exists():
        return None
    try:
        return Calibration(**yaml.safe_load(path.read_text()))
    except Exception as exc:  # a broken shipped file is a packaging bug, but say which file
        raise SpecError(f"{path}: invalid calibration file ({exc})") from None


def nearest_family(family: str, available: Iterable[str] | None = None) -> str:
    """The family whose constants apply: itself if available, else the nearest available one
    in family_order() (ties: the same compute-capability major, then the older), else 'default'.
    `available` defaults to the shipped files."""
    order = family_order()
    have = set(available) if available is not None else {f for f in order if _read(f) is not None}
    if family in have:
        return family
    if family not in order:
        return "default"
    i = order.index(family)
    majors = family_cc_majors(family)
    near = sorted(
        (abs(order.index(f) - i), not (family_cc_majors(f) & majors), order.index(f) > i, f) for f in have if f in order
    )
    return near[0][-1] if near else "default"


def merge_families(base: dict[str, float], fitted: dict[str, dict[str, float]], family: str) -> dict[str, float]:
    """The constants `family` uses: `base` (default.yaml), each constant replaced by the value of the
    nearest family that fitted it (nearest_family over the families in `fitted` that have it), so a
    family with tensor-core data but no conv data keeps the nearest conv family's cuDNN constants."""
    values = dict(base)
    for name in {n for c in fitted.values() for n in c}:
        chosen = nearest_family(family, [f for f, c in fitted.items() if name in c])
        if chosen != "default":
            values[name] = fitted[chosen][name]
    return values


@cache
def constants_for(family: str) -> Constants:
    """Calibrated constants for an architecture family, defaults filled in from default.yaml."""
    base = _read("default")
    assert base is not None, "hw_specs/calibration/default.yaml is missing"
    fitted = {f: c.constants for f in family_order() if (c := _read(f)) is not None}
    return Constants(**merge_families(base.constants, fitted, family))


def constants_vector(family: str) -> np.ndarray:
    """The constants as a float64 vector in CONSTANT_NAMES order, for the engine."""
    c = constants_for(family)
    return np.array([getattr(c, n) for n in CONSTANT_NAMES], dtype=np.float64)
