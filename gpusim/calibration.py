"""Efficiency constants per architecture family, fitted on recorded timings (validation/calibrate.py).

A family without its own file uses the nearest family that has one (by the order in
hw_specs/calibration/families.yaml), so a new GPU is predicted from its spec alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache, lru_cache

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

from gpusim.errors import SpecError
from gpusim.spec import load_arch
from hw_specs import CALIBRATION_DIR, CC_DIR


class Constants(BaseModel):
    """The model's free constants (see docs/architecture.md for what each one does)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    launch_overhead_us: float = Field(ge=0, description="framework + launch time added to every kernel")
    simt_efficiency: float = Field(gt=0, le=1.5, description="sustained fraction of FP32 CUDA-core peak")
    tensor_efficiency: float = Field(gt=0, le=1.5, description="sustained fraction of tensor-core peak")
    tile_intensity_half: float = Field(ge=0, description="tile efficiency = I / (I + this), I = 2*BM*BN/(BM+BN)")
    warps_to_saturate: float = Field(gt=0, description="resident warps per SM at which latency is hidden")
    dram_efficiency: float = Field(gt=0, le=1.0, description="achievable fraction of DRAM peak")
    sm_bandwidth_cap: float = Field(gt=0, description="one SM's bandwidth at most this times its fair share")
    wave_latency_us: float = Field(ge=0, description="fixed time of every wave: pipeline fill and epilogue")
    winograd_fused_efficiency: float = Field(gt=0, le=1.5, description="math rate of fused Winograd GEMMs vs plain")
    winograd_fused_fixed_channels: float = Field(
        ge=0, description="per-CTA fixed work of fused Winograd (output transform, prologue), in input channels"
    )
    winograd_nonfused_efficiency: float = Field(gt=0, le=1.5, description="math rate of non-fused Winograd GEMMs")
    implicit_gemm_efficiency: float = Field(
        gt=0, le=1.5, description="math rate of cuDNN FP32 implicit-GEMM conv kernels"
    )
    strided_dram_efficiency: float = Field(
        gt=0, le=1.0, description="fraction of DRAM peak for cuBLAS 'tn' operand strips read in 32-byte sectors"
    )
    cta_drift_fraction: float = Field(
        gt=0, description="spread of a wave's CTAs along K, as a fraction of the wave's operand strips"
    )
    drift_waves: float = Field(gt=0, description="waves over which that spread builds up")
    l2_miss_sharpness: float = Field(gt=0, description="exponent of the L2 miss curve in (spread footprint / L2 size)")
    unaligned_row_extra: float = Field(ge=0, description="extra operand traffic when rows are not 16-byte aligned")
    host_overhead_conv_us: float = Field(ge=0, description="CPU time of one eager cuDNN conv call timed alone")
    host_overhead_gemm_us: float = Field(ge=0, description="CPU time of one eager cuBLAS linear/bmm call timed alone")
    host_overhead_memory_us: float = Field(ge=0, description="CPU time of one eager memory-bound op timed alone")
    cudnn_plan_cache_us_per_entry: float = Field(
        ge=0,
        description="extra CPU time of a conv call per cached cuDNN plan, PyTorch 2.1 only (validation/harness.py)",
    )


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


@cache
def constants_for(family: str) -> Constants:
    """Calibrated constants for an architecture family, defaults filled in from default.yaml."""
    base = _read("default")
    assert base is not None, "hw_specs/calibration/default.yaml is missing"
    values = dict(base.constants)
    chosen = nearest_family(family)
    if chosen != "default":
        values.update(_read(chosen).constants)  # type: ignore[union-attr]
    return Constants(**values)


def constants_vector(family: str) -> np.ndarray:
    """The constants as a float64 vector in CONSTANT_NAMES order, for the engine."""
    c = constants_for(family)
    return np.array([getattr(c, n) for n in CONSTANT_NAMES], dtype=np.float64)
