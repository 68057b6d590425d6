"""GPU spec files: pydantic schema, per-compute-capability inheritance, lookup by name or alias.

A device file (hw_specs/devices/*.yaml) names its compute capability; the per-SM limits
come from hw_specs/compute_capability/sm_XY.yaml, so they are written once per capability.
Every number in either file carries its source in the file's `sources` mapping.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from functools import cache, lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gpusim.errors import SpecError
from gpusim.yaml_load import load_yaml
from hw_specs import CC_DIR, DEVICE_DIR

DTYPES: tuple[str, ...] = ("fp32", "tf32", "fp16", "bf16", "int8")
DEFAULT_GPU = "a100"  # the GPU every command uses when none is named
ARCHITECTURES = ("maxwell", "pascal", "volta", "turing", "ampere", "ada", "hopper", "blackwell")


def _numeric_fields(model: BaseModel) -> list[str]:
    return [k for k, v in model.__dict__.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]


class _Sourced(BaseModel):
    """A model whose every number must name where it comes from in `sources`."""

    # strict: a bool or a quoted string is not a number (`sm_count: true` is an error, not 1 SM);
    # allow_inf_nan=False: `.inf` and `.nan` are not measurements
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    sources: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _every_number_has_a_source(self) -> _Sourced:
        missing = [f for f in _numeric_fields(self) if f not in self.sources]
        if missing:
            raise ValueError(f"sources: no source given for {', '.join(missing)}")
        return self


class SmLimits(_Sourced):
    """Per-SM resource limits of one compute capability (CUDA C++ Programming Guide, cuda_occupancy.h)."""

    compute_capability: str
    max_threads_per_sm: int = Field(gt=0)
    max_warps_per_sm: int = Field(gt=0)
    max_blocks_per_sm: int = Field(gt=0)
    max_threads_per_block: int = Field(gt=0)
    warp_size: int = Field(gt=0)
    registers_per_sm: int = Field(gt=0)
    max_registers_per_thread: int = Field(gt=0)
    register_allocation_unit: int = Field(gt=0, description="registers, allocated per warp")
    register_partitions: int = Field(
        gt=0, description="SM sub-partitions that each own a quarter (or half) of the register file"
    )
    warp_instructions_per_clock: int = Field(
        gt=0, description="warp instructions each sub-partition's scheduler dispatches per clock (dual issue: 2)"
    )
    shared_memory_per_sm: int = Field(gt=0, description="bytes, largest carveout")
    max_shared_memory_per_block: int = Field(gt=0, description="bytes, opt-in maximum")
    shared_memory_allocation_unit: int = Field(gt=0, description="bytes")
    reserved_shared_memory_per_block: int = Field(ge=0, description="bytes the driver reserves per CTA")

    @model_validator(mode="after")
    def _one_cta_fits(self) -> SmLimits:
        """The largest CTA these limits allow must fit on one SM; otherwise kernels would be priced at infinity."""
        checks = (
            ("max_threads_per_block", self.max_threads_per_block, "max_threads_per_sm", self.max_threads_per_sm),
            ("max_warps_per_sm", self.max_warps_per_sm * self.warp_size, "max_threads_per_sm", self.max_threads_per_sm),
            (
                "max_shared_memory_per_block",
                self.max_shared_memory_per_block + self.reserved_shared_memory_per_block,
                "shared_memory_per_sm",
                self.shared_memory_per_sm,
            ),
            (
                "max_registers_per_thread",
                self.max_registers_per_thread * self.warp_size,
                "registers_per_sm",
                self.registers_per_sm,
            ),
        )
        for field, need, limit_field, limit in checks:
            if need > limit:
                raise ValueError(
                    f"{field}: one CTA (or warp) at this limit needs {need}, more than {limit_field} ({limit})"
                )
        return self


class PeakRates(BaseModel):
    """Dense peak throughput at the boost clock, in TFLOP/s (TOP/s for int8); absent = no such unit."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    fp32: float = Field(gt=0)
    tf32: float | None = Field(default=None, gt=0)
    fp16: float | None = Field(default=None, gt=0)
    bf16: float | None = Field(default=None, gt=0)
    int8: float | None = Field(default=None, gt=0)


class DeviceFile(_Sourced):
    """What a device YAML file holds (before the compute capability's limits are merged in)."""

    name: str
    aliases: list[str] = Field(min_length=1)
    architecture: Literal[ARCHITECTURES]  # type: ignore[valid-type]
    compute_capability: str
    sm_count: int = Field(gt=0)
    fp32_cores_per_sm: int = Field(gt=0)
    boost_clock_mhz: float = Field(gt=0)
    sustained_clock_mhz: float = Field(gt=0, description="clock the simulator uses")
    clock_note: str = Field(min_length=1, description="why the sustained clock is what it is")
    memory_bandwidth_gbs: float = Field(gt=0)
    memory_gb: float = Field(gt=0)
    l2_cache_mb: float = Field(gt=0)
    peak_tflops: PeakRates
    sm_limits: dict[str, int] = Field(default_factory=dict, description="overrides of the compute capability's limits")

    @model_validator(mode="after")
    def _peak_rates_sourced(self) -> DeviceFile:
        if "peak_tflops" not in self.sources:
            raise ValueError("sources: no source given for peak_tflops")
        if self.sustained_clock_mhz > self.boost_clock_mhz * 1.0001:
            raise ValueError("sustained_clock_mhz: must not exceed boost_clock_mhz")
        return self


class GpuSpec(BaseModel):
    """A device merged with its compute capability's limits: what the simulator reads."""

    model_config = ConfigDict(frozen=True)
    device: DeviceFile
    limits: SmLimits
    path: str
    content_hash: str

    @property
    def name(self) -> str:
        """Marketing name of the GPU (e.g. 'Tesla T4')."""
        return self.device.name

    @property
    def aliases(self) -> list[str]:
        """Names this spec answers to, including torch.cuda.get_device_name() strings."""
        return self.device.aliases

    @property
    def sm_count(self) -> int:
        """Number of streaming multiprocessors."""
        return self.device.sm_count

    @property
    def architecture(self) -> str:
        """Architecture family name (volta, ampere, ...)."""
        return self.device.architecture

    @property
    def cc_major_minor(self) -> tuple[int, int]:
        """Compute capability as a (major, minor) pair."""
        major, minor = self.device.compute_capability.split(".")
        return int(major), int(minor)

    @property
    def clock_scale(self) -> float:
        """Sustained clock over boost clock: peak rates (quoted at boost) are scaled by this."""
        return self.device.sustained_clock_mhz / self.device.boost_clock_mhz

    def at_clock(self, clock_mhz: float) -> GpuSpec:
        """This GPU running at clock_mhz (e.g. the SM clock recorded while an op was timed) instead of its
        sustained clock. The clock may exceed the rated boost (GPU Boost takes many cards past it):
        peak rates, quoted at boost, then scale up with it."""
        device = self.device.model_copy(update={"sustained_clock_mhz": float(clock_mhz)})
        return self.model_copy(update={"device": device, "content_hash": f"{self.content_hash}@{clock_mhz:g}MHz"})

    def has_native(self, dtype: str) -> bool:
        """Whether the GPU has a dedicated rate for dtype (tensor cores or fast fp16)."""
        return getattr(self.device.peak_tflops, dtype) is not None

    def peak_flops_per_us(self, dtype: str) -> float:
        """Whole-GPU peak FLOP per microsecond for dtype at the sustained clock.

        A dtype without its own rate runs at the fp32 rate (as PyTorch does when TF32 or
        bf16 tensor cores are absent)."""
        tflops = getattr(self.device.peak_tflops, dtype) or self.device.peak_tflops.fp32
        return tflops * 1e6 * self.clock_scale

    def dram_bytes_per_us(self) -> float:
        """Peak DRAM bandwidth in bytes per microsecond."""
        return self.device.memory_bandwidth_gbs * 1e3

    @property
    def fp32_issue_ratio(self) -> float:
        """Warp instructions the SM can issue per clock over the FP32 warp instructions its lanes can
        execute per clock: 2 when an FFMA occupies a 16-lane unit for two clocks (Volta, Turing,
        GA100) or the scheduler dual-issues (Pascal), 1 on 128-lane single-issue SMs (GA10x, Ada,
        Hopper), where every non-FFMA instruction takes an FFMA's issue slot."""
        lim = self.limits
        return lim.warp_size * lim.warp_instructions_per_clock * lim.register_partitions / self.device.fp32_cores_per_sm


def _read_yaml(path: Path) -> dict:
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    return data


def _first_error(path: Path, exc: ValidationError) -> SpecError:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "(file)"
    msg = err["msg"]
    if err["type"] == "value_error" and not err["loc"]:  # a model validator's own "field: problem"
        return SpecError(f"{path}: {msg.removeprefix('Value error, ')}")
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    elif err["type"] == "literal_error":
        msg = f"got {err.get('input')!r}; {msg.lower()}"
    elif err["type"] == "missing":
        msg = "missing field"
    elif err["type"].endswith("_type") or err["type"] == "finite_number":
        msg = f"{msg.lower()}, got {err.get('input')!r}"
    return SpecError(f"{path}: field '{field}': {msg}")


@cache
def load_limits(compute_capability: str) -> SmLimits:
    """Per-SM limits for a compute capability such as '8.0', from hw_specs/compute_capability."""
    path = CC_DIR / f"sm_{compute_capability.replace('.', '')}.yaml"
    if not path.exists():
        known = sorted(p.stem[3:4] + "." + p.stem[4:] for p in CC_DIR.glob("sm_*.yaml"))
        raise SpecError(f"compute capability {compute_capability!r} has no limits file; known: {', '.join(known)}")
    try:
        return SmLimits(**_read_yaml(path))
    except ValidationError as exc:
        raise _first_error(path, exc) from None
    except TypeError as exc:
        raise SpecError(f"{path}: {exc}") from None


def load_spec_file(path: str | Path) -> GpuSpec:
    """Load and validate one device YAML file, merging its compute capability's limits."""
    path = Path(path)
    raw = _read_yaml(path)
    try:
        device = DeviceFile(**raw)
    except ValidationError as exc:
        raise _first_error(path, exc) from None
    limits = load_limits(device.compute_capability)
    if device.sm_limits:
        unknown = sorted(set(device.sm_limits) - set(SmLimits.model_fields) - {"sources"})
        if unknown:
            raise SpecError(
                f"{path}: field 'sm_limits.{unknown[0]}': unknown field; allowed: "
                f"{', '.join(f for f in SmLimits.model_fields if f not in ('sources', 'compute_capability'))}"
            )
        merged = limits.model_dump()
        merged.update(device.sm_limits)
        merged["sources"] = {
            **limits.sources,
            **{k: device.sources.get(f"sm_limits.{k}", device.sources.get("sm_limits", "")) for k in device.sm_limits},
        }
        try:
            limits = SmLimits(**merged)
        except ValidationError as exc:
            raise _first_error(path, exc) from None
    digest = hashlib.sha256(path.read_bytes() + limits.model_dump_json().encode()).hexdigest()[:16]
    return GpuSpec(device=device, limits=limits, path=str(path), content_hash=digest)


@lru_cache(maxsize=1)
def _builtin_specs() -> tuple[GpuSpec, ...]:
    specs = tuple(load_spec_file(p) for p in sorted(DEVICE_DIR.glob("*.yaml")))
    owner: dict[str, str] = {}
    for spec in specs:
        for key in sorted(_keys(spec)):
            if owner.setdefault(key, spec.path) != spec.path:
                raise SpecError(
                    f"{spec.path}: name or alias {key!r} is also used by {owner[key]}; names must be unique"
                )
    return specs


def alias_clash(spec: GpuSpec) -> str | None:
    """The shipped spec file that already answers to one of spec's names, as a message (None: no clash)."""
    for other in _builtin_specs():
        if Path(other.path).resolve() != Path(spec.path).resolve():
            shared = sorted(_keys(spec) & _keys(other))
            if shared:
                return f"{spec.path}: name or alias {shared[0]!r} is also used by {other.path}"
    return None


def list_specs() -> list[GpuSpec]:
    """All GPU specs shipped with wavecut, sorted by file name."""
    return list(_builtin_specs())


def _keys(spec: GpuSpec) -> set[str]:
    return {a.lower() for a in [spec.name, Path(spec.path).stem, *spec.aliases]}


@lru_cache(maxsize=256)
def _load_spec_cached(name_or_path: str) -> GpuSpec:
    if not name_or_path.strip():
        raise SpecError("--gpu: empty GPU name; `wavecut specs` lists the names (or pass a spec YAML file)")
    candidate = Path(name_or_path)
    # Only what looks like a path is read as one: a directory named `a100` in the working directory
    # must not shadow the built-in GPU.
    if looks_like_path(name_or_path, (".yaml", ".yml")):
        if not candidate.is_file():
            raise SpecError(f"{name_or_path}: no such spec file")
        return load_spec_file(candidate)
    wanted = name_or_path.strip().lower()
    for spec in _builtin_specs():
        if wanted in _keys(spec):
            return spec
    names = sorted({k for s in _builtin_specs() for k in _keys(s)})
    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `wavecut specs` lists them"
    raise SpecError(f"unknown GPU {name_or_path!r}{hint} (or pass a path to a spec YAML file)")


def looks_like_path(text: str, suffixes: tuple[str, ...]) -> bool:
    """Whether a name given on the command line means a file: it has a directory separator or one of
    `suffixes`, or it is an existing regular file. Anything else is a built-in name."""
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return any(c in text for c in seps) or Path(text).suffix.lower() in suffixes or Path(text).is_file()


def load_spec(name_or_path: str | Path | GpuSpec) -> GpuSpec:
    """A GPU spec by name, alias (case-insensitive, e.g. 'a100', 'Tesla T4') or YAML path."""
    if isinstance(name_or_path, GpuSpec):
        return name_or_path
    return _load_spec_cached(str(name_or_path))
