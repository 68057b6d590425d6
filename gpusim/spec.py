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
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gpusim.errors import SpecError
from gpusim.yaml_load import load_yaml
from hw_specs import CC_DIR, DEVICE_DIR, MEMORY_TYPES_FILE

DEFAULT_GPU = "a100"  # the GPU every command uses when none is named

# The sustained-clock rule (hw_specs/README.md, "Sustained clocks"; docs/accuracy.md). NVIDIA guarantees a
# board's base clock within its board power under its heaviest load. Dynamic power goes as f V^2 and the
# voltage rises about in proportion to the clock over the boost range (DVFS_EXPONENT = 3), so a long dense
# GEMM that draws a fraction `a` of that load's power at the same clock holds base x a^(-1/3) at the same
# board power, never more than the rated clock. The heaviest load also drives the FP16 matrix units, whose
# power per clock^3 grows with their rate over the FP32 rate (rho = peak fp16 / peak fp32: 16 on A100, 8 on T4
# and V100, 4 on GA10x/Ada, 2 on P100's FP16x2, 0 without FP16 math as on P4), so per math unit
# a = share / (1 + fp16_power x rho) (GemmActivity; GEMM_ACTIVITY holds the constants, from public measurements):
# - cuda_cores share 0.579, fp16_power 0.1641: both from cards whose SGEMMs hold their rated clock (the largest
#   activities that allow it). The P4 (rho 0, base 886 MHz from a third-party listing) holds its datasheet's
#   1063 MHz (5.5 TFLOP/s 'with boost clock'), so share = (886/1063)^3 = 0.579; NeuSight's SGEMMs on the 250 W
#   A100 PCIe 40GB (base 765, rho 16) reach 18.1 TFLOP/s and fit best at its 1410 boost, a <= (765/1410)^3
#   = 0.1597, so fp16_power = (0.579/0.1597 - 1)/16 = 0.1641. This puts the 70 W T4 (rho 8.02) at 929 MHz, near
#   the ~921 MHz its own bmm rows show (accuracy.md, "Sustained clocks").
# - tensor_cores share 0.42, fp16_power 0 (the GEMM is the FP16 load itself, measured directly): a continuous
#   4096^3 cuBLAS FP16 GEMM on a 70 W T4 (base 585) runs ~24 of 65 TFLOP/s (NVIDIA developer forum, 'About GPU
#   peak performance'): ~780 MHz at the 0.75 efficiency an unthrottled A100 SXM4 reaches (235 of 312 TFLOP/s),
#   a = (585/780)^3 = 0.42; the same CUTLASS kernel on a 250 W A100 PCIe 40GB (base 765) runs 158 vs 235
#   TFLOP/s (NVIDIA/cutlass#956): 948 MHz, a = 0.52. The lower is taken.
DVFS_EXPONENT = 3.0
# How far a device file's FP32 peak may be from sm_count x lanes x 2 x boost (datasheets round to 1%).
PEAK_FP32_TOLERANCE = 0.03


class GemmActivity(BaseModel):
    """How much of a board's heaviest-load power a long dense GEMM on one math unit draws at the same clock:
    share / (1 + fp16_power x peak fp16 / peak fp32) (the rule above)."""

    model_config = ConfigDict(frozen=True)
    share: float = Field(gt=0, le=1, description="the activity on a GPU without FP16 math (rho = 0)")
    fp16_power: float = Field(
        ge=0, description="the heaviest load's extra power per unit of rho, as a fraction of its power at rho 0"
    )

    def of(self, rates: PeakRates) -> float:
        """The activity on a GPU with these peak rates (no fp16 rate: rho = 0)."""
        return self.share / (1.0 + self.fp16_power * self._rho(rates))

    def arithmetic(self, rates: PeakRates) -> str:
        """`of` in words, for `wavecut specs show`: the constants and rho it combines, or the share alone."""
        if self.fp16_power == 0.0:
            return f"activity {self.share:g}"
        return (
            f"activity {self.share:g} / (1 + {self.fp16_power:g} x {self._rho(rates):.3g} fp16/fp32 rate) "
            f"= {self.of(rates):.4g}"
        )

    @staticmethod
    def _rho(rates: PeakRates) -> float:
        return (rates.fp16 or 0.0) / rates.fp32


GEMM_ACTIVITY: dict[str, GemmActivity] = {
    "cuda_cores": GemmActivity(share=0.579, fp16_power=0.1641),
    "tensor_cores": GemmActivity(share=0.42, fp16_power=0.0),
}
MATH_UNITS = tuple(GEMM_ACTIVITY)
# What a clock rests on, and how far to trust it: a recorded clock log on that GPU; the rule leaves the card at
# its rated clock (boost or the clock the datasheet peaks assume); the rule lowers it below that (a power
# limit predicted from public facts, unchecked on most cards); no published base clock, so the rule cannot
# check the rated clock at all.
CLOCK_CONFIDENCE: dict[str, str] = {"measured": "high", "rated": "medium", "rule": "low", "no base clock": "low"}
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
    """Per-SM resource limits of one compute capability (CUDA C++ Programming Guide, cuda_occupancy.h).

    Upper bounds here and in DeviceFile are far above any GPU's (no SM holds 256 CTAs, no GPU has
    1024 SMs); they keep the engine's int64 arithmetic from overflowing on a mistyped number."""

    compute_capability: str
    max_threads_per_sm: int = Field(gt=0, le=8192)
    max_warps_per_sm: int = Field(gt=0, le=256)
    max_blocks_per_sm: int = Field(gt=0, le=256)
    max_threads_per_block: int = Field(gt=0, le=8192)
    warp_size: int = Field(gt=0, le=64)
    registers_per_sm: int = Field(gt=0, le=1 << 20)
    max_registers_per_thread: int = Field(gt=0, le=4096)
    register_allocation_unit: int = Field(gt=0, le=1 << 16, description="registers, allocated per warp")
    register_partitions: int = Field(
        gt=0, description="SM sub-partitions that each own a quarter (or half) of the register file"
    )
    warp_instructions_per_clock: int = Field(
        gt=0, description="warp instructions each sub-partition's scheduler dispatches per clock (dual issue: 2)"
    )
    shared_memory_per_sm: int = Field(gt=0, le=1 << 24, description="bytes, largest carveout")
    max_shared_memory_per_block: int = Field(gt=0, le=1 << 24, description="bytes, opt-in maximum")
    shared_memory_allocation_unit: int = Field(gt=0, le=1 << 16, description="bytes")
    reserved_shared_memory_per_block: int = Field(ge=0, le=1 << 16, description="bytes the driver reserves per CTA")
    max_grid_dim_yz: int = Field(
        gt=0, le=(1 << 31) - 1, description="largest y or z dimension of a grid (a batched GEMM's z loops past it)"
    )

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


class TensorCoreMma(BaseModel):
    """One tensor-core MMA instruction: the letter its kernels' names use and its M x N x K shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    letter: str = Field(min_length=1, description="dtype letter in kernel names: h (fp16), bf, s (tf32), i, e (fp8)")
    shape: tuple[int, int, int] = Field(description="M x N x K of the warp-level MMA")

    @property
    def instruction(self) -> str:
        """The instruction as cuBLAS/CUTLASS kernel names spell it, e.g. 'h16816'."""
        return self.letter + "".join(str(d) for d in self.shape)


class KernelPrefix(BaseModel):
    """Architecture prefix of the library kernels' names, per math unit (cuBLAS/cuDNN naming)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    simt: str = Field(min_length=1, description="CUDA-core kernels, e.g. 'volta' in volta_sgemm_128x64_tn")
    tensorop: str = Field(min_length=1, description="tensor-core kernels, e.g. 'turing' in turing_h1688gemm_...")


class ArchFacts(_Sourced):
    """What the code knows about a compute capability beyond its per-SM limits (the `arch` block of
    hw_specs/compute_capability/sm_XY.yaml): the one place a family, kernel names, tensor-core dtypes
    and lanes are written; no code path branches on a compute-capability number."""

    family: Literal[ARCHITECTURES]  # type: ignore[valid-type]
    fp32_lanes_per_sm: int = Field(gt=0, le=1024)
    kernel_table: int = Field(
        gt=0, description="compute capability x10 whose library kernel table this one runs (sm_86: 80)"
    )
    kernel_prefix: KernelPrefix
    tensor_cores: dict[str, TensorCoreMma] = Field(
        default_factory=dict, description="dtype -> MMA instruction; the dtypes whose GEMMs run on tensor cores"
    )
    fused_winograd_tiles: tuple[tuple[int, int, int], ...] = Field(
        min_length=1, description="cuDNN's fused Winograd arrangements (images, tile rows, tile columns) it ships"
    )

    @field_validator("fused_winograd_tiles", mode="before")
    @classmethod
    def _tiles_from_yaml_lists(cls, value: object) -> object:
        """YAML writes tuples as lists; the numbers inside stay strict."""
        return tuple(tuple(t) if isinstance(t, list) else t for t in value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _structured_facts_sourced(self) -> ArchFacts:
        missing = [
            f for f in ("family", "kernel_prefix", "tensor_cores", "fused_winograd_tiles") if f not in self.sources
        ]
        if missing:
            raise ValueError(f"sources: no source given for {', '.join(missing)}")
        return self


class PeakRates(BaseModel):
    """Dense peak throughput at the boost clock, in TFLOP/s (TOP/s for int8); absent = no such unit."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    fp32: float = Field(gt=0, le=1e6)
    tf32: float | None = Field(default=None, gt=0, le=1e6)
    fp16: float | None = Field(default=None, gt=0, le=1e6)
    bf16: float | None = Field(default=None, gt=0, le=1e6)
    int8: float | None = Field(default=None, gt=0, le=1e6)
    fp8: float | None = Field(default=None, gt=0, le=1e6, description="E4M3 and E5M2 (same rate), FP32 accumulate")


class RowActivation(_Sourced):
    """Row-activation timing of one independently scheduled DRAM channel (hw_specs/memory_types.yaml)."""

    channel_bits: int = Field(gt=0, le=4096, description="data bits of one channel (HBM2: a pseudo channel)")
    page_bytes: int = Field(gt=0, le=1 << 20, description="bytes of one DRAM row (page) of a channel")
    trrd_ns: float = Field(gt=0, le=1000, description="least time between two row activations of a channel")
    tfaw_ns: float = Field(gt=0, le=1000, description="window in which a channel may activate at most four rows")


class MemoryType(BaseModel):
    """One DRAM technology; `activation` None: no sourced timing, its row-activation ceiling is not modelled."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    activation: RowActivation | None = None


@cache
def memory_types() -> dict[str, MemoryType]:
    """The DRAM technologies a device file's `memory_type` may name (hw_specs/memory_types.yaml)."""
    raw = _read_yaml(MEMORY_TYPES_FILE)
    types = {}
    for name, block in raw.items():
        try:
            types[str(name)] = MemoryType(**(block or {}))
        except ValidationError as exc:
            err = _first_error(MEMORY_TYPES_FILE, exc)
            raise SpecError(str(err).replace("field '", f"field '{name}.", 1)) from None
    return types


class DeviceFile(_Sourced):
    """What a device YAML file holds (before the compute capability's limits are merged in)."""

    name: str
    aliases: list[str] = Field(min_length=1)
    architecture: Literal[ARCHITECTURES] | None = Field(  # type: ignore[valid-type]
        default=None, description="optional: the compute capability's family (must agree when given)"
    )
    compute_capability: str
    sm_count: int = Field(gt=0, le=1024)
    fp32_cores_per_sm: int | None = Field(
        default=None, gt=0, description="optional: the compute capability's FP32 lanes per SM (must agree when given)"
    )
    boost_clock_mhz: float = Field(gt=0, le=10_000, description="the clock the peak_tflops figures are computed at")
    base_clock_mhz: float | None = Field(
        default=None, gt=0, le=10_000, description="NVIDIA's base clock (guaranteed within tdp_w); none: not published"
    )
    tdp_w: float = Field(gt=0, le=100_000, description="board power limit, W (the power the base clock is rated at)")
    rated_clock_mhz: (
        Annotated[float, Field(gt=0, le=10_000)] | dict[str, Annotated[float, Field(gt=0, le=10_000)]] | None
    ) = Field(
        default=None,
        description="the clock NVIDIA's datasheet peaks assume, where below boost: one for every math unit, or per "
        "unit (H100: tensor_cores 1830, while its FP32 peak assumes the 1980 boost)",
    )
    sustained_clock_mhz: float | None = Field(
        default=None, gt=0, le=10_000, description="measured override of the rule: needs clock_log"
    )
    clock_log: str | None = Field(
        default=None, min_length=1, description="the recorded clock log (nvidia-smi, `validate clocks`) it comes from"
    )
    clock_note: str | None = Field(default=None, min_length=1, description="anything else about the clocks")
    memory_bandwidth_gbs: float = Field(gt=0, le=1e6)
    memory_type: str | None = Field(default=None, description="DRAM technology, a key of hw_specs/memory_types.yaml")
    memory_bus_bits: int | None = Field(default=None, gt=0, le=65536, description="DRAM interface width, bits")
    memory_gb: float = Field(gt=0, le=1e6)
    l2_cache_mb: float = Field(gt=0, le=1e6)
    peak_tflops: PeakRates
    sm_limits: dict[str, int] = Field(default_factory=dict, description="overrides of the compute capability's limits")

    @model_validator(mode="after")
    def _peak_rates_sourced(self) -> DeviceFile:
        if "peak_tflops" not in self.sources:
            raise ValueError("sources: no source given for peak_tflops")
        if isinstance(self.rated_clock_mhz, dict) and not set(self.rated_clock_mhz) <= set(MATH_UNITS):
            unknown = sorted(set(self.rated_clock_mhz) - set(MATH_UNITS))[0]
            raise ValueError(f"rated_clock_mhz: unknown math unit {unknown!r}; allowed: {', '.join(MATH_UNITS)}")
        rated = self.rated_clock_mhz
        per_unit = rated.items() if isinstance(rated, dict) else [(None, rated)]
        clocks = {"base_clock_mhz": self.base_clock_mhz} | {
            "rated_clock_mhz" + ("" if unit is None else f".{unit}"): value for unit, value in per_unit
        }
        for field, value in clocks.items():
            if value is not None and value > self.boost_clock_mhz * 1.0001:
                raise ValueError(f"{field}: must not exceed boost_clock_mhz ({self.boost_clock_mhz:g})")
        if (self.memory_type is None) != (self.memory_bus_bits is None):
            raise ValueError("memory_type: give memory_type and memory_bus_bits together, or neither")
        if self.memory_type is not None and self.memory_type not in memory_types():
            raise ValueError(
                f"memory_type: got {self.memory_type!r}; allowed: {', '.join(memory_types())} (hw_specs/memory_types.yaml)"
            )
        if (self.sustained_clock_mhz is None) != (self.clock_log is None):
            raise ValueError(
                "sustained_clock_mhz: a measured override needs clock_log (the recorded clock log it comes from), "
                "and clock_log needs sustained_clock_mhz; without both the rule sets the clock (hw_specs/README.md)"
            )
        return self

    def rated_clock(self, unit: str | None) -> float | None:
        """The clock the datasheet peaks of `unit` (a MATH_UNITS name) assume, None where the file gives none for
        it (then its boost clock); `unit` None: the one clock given for every unit, if the file gives one."""
        if isinstance(self.rated_clock_mhz, dict):
            return None if unit is None else self.rated_clock_mhz.get(unit)
        return self.rated_clock_mhz


class UnitClock(BaseModel):
    """The clock one math unit sustains under a long dense GEMM, what it rests on and how far to trust it."""

    model_config = ConfigDict(frozen=True)
    unit: str
    mhz: float
    basis: str  # a key of CLOCK_CONFIDENCE
    confidence: str
    inputs: str  # the rule's arithmetic or the measurement, in words


def unit_clock(device: DeviceFile, unit: str) -> UnitClock:
    """The sustained clock of `unit` (a MATH_UNITS name) on `device`: the measured override if the file has
    one, else min(rated clock, base x activity^(-1/DVFS_EXPONENT)), the activity from GEMM_ACTIVITY (the rule
    above it)."""
    if device.sustained_clock_mhz is not None:
        mhz, basis, inputs = device.sustained_clock_mhz, "measured", f"recorded in {device.clock_log}"
    else:
        rated = device.rated_clock(unit)
        cap = rated or device.boost_clock_mhz
        cap_text = f"{'rated' if rated else 'boost'} {cap:g} MHz"
        if device.base_clock_mhz is None:
            mhz, basis, inputs = cap, "no base clock", f"{cap_text}; no base clock published, the rule cannot bind"
        else:
            rule = GEMM_ACTIVITY[unit]
            activity = rule.of(device.peak_tflops)
            power_limited = device.base_clock_mhz * activity ** (-1.0 / DVFS_EXPONENT)
            mhz, basis = (power_limited, "rule") if power_limited < cap else (cap, "rated")
            inputs = (
                f"{rule.arithmetic(device.peak_tflops)}; "
                f"base {device.base_clock_mhz:g} MHz x {activity:.4g}^(-1/{DVFS_EXPONENT:g}) = {power_limited:.0f} MHz "
                f"({device.tdp_w:g} W board), {'below' if basis == 'rule' else 'capped at'} {cap_text}"
            )
    return UnitClock(unit=unit, mhz=mhz, basis=basis, confidence=CLOCK_CONFIDENCE[basis], inputs=inputs)


class GpuSpec(BaseModel):
    """A device merged with its compute capability's limits: what the simulator reads."""

    model_config = ConfigDict(frozen=True)
    device: DeviceFile
    limits: SmLimits
    arch: ArchFacts
    path: str
    content_hash: str
    recorded_clock_mhz: float | None = None  # set by at_clock: every unit at this clock

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
        """Architecture family name (volta, ampere, ...), from the compute capability's file."""
        return self.arch.family

    @property
    def fp32_lanes_per_sm(self) -> int:
        """FP32 lanes per SM, from the compute capability's file."""
        return self.arch.fp32_lanes_per_sm

    def clock(self, unit: str) -> UnitClock:
        """The clock `unit` ('cuda_cores' or 'tensor_cores') runs dense work at (unit_clock), or the recorded
        clock this spec was put at (at_clock)."""
        if self.recorded_clock_mhz is not None:
            mhz = self.recorded_clock_mhz
            return UnitClock(unit=unit, mhz=mhz, basis="measured", confidence="high", inputs=f"recorded {mhz:g} MHz")
        return unit_clock(self.device, unit)

    @property
    def sustained_clock_mhz(self) -> float:
        """The CUDA-core clock: what every kernel but tensor-core GEMMs runs at."""
        return self.clock("cuda_cores").mhz

    def clock_scale(self, dtype: str = "fp32") -> float:
        """The clock dtype's GEMMs run at over the boost clock: peak rates (quoted at boost) are scaled by this."""
        unit = "tensor_cores" if self.uses_tensor_cores(dtype) else "cuda_cores"
        return self.clock(unit).mhz / self.device.boost_clock_mhz

    def at_clock(self, clock_mhz: float) -> GpuSpec:
        """This GPU running every unit at clock_mhz (e.g. the SM clock recorded while an op was timed) instead of
        its sustained clocks. The clock may exceed the rated boost (GPU Boost takes many cards past it): peak
        rates, quoted at boost, then scale up with it."""
        return self.model_copy(
            update={"recorded_clock_mhz": float(clock_mhz), "content_hash": f"{self.content_hash}@{clock_mhz:g}MHz"}
        )

    def has_native(self, dtype: str) -> bool:
        """Whether the GPU has a dedicated rate for dtype (tensor cores or fast fp16)."""
        return getattr(self.device.peak_tflops, dtype) is not None

    def uses_tensor_cores(self, dtype: str) -> bool:
        """Whether GEMMs of dtype run on tensor cores: the compute capability has an MMA for it and the
        device file a peak rate (a part may lack a unit its architecture has)."""
        return dtype in self.arch.tensor_cores and self.has_native(dtype)

    def peak_flops_per_us(self, dtype: str) -> float:
        """Whole-GPU peak FLOP per microsecond for dtype at the sustained clock.

        A dtype without its own rate runs at the fp32 rate (as PyTorch does when TF32 or
        bf16 tensor cores are absent)."""
        tflops = getattr(self.device.peak_tflops, dtype) or self.device.peak_tflops.fp32
        return tflops * 1e6 * self.clock_scale(dtype)

    def dram_bytes_per_us(self) -> float:
        """Peak DRAM bandwidth in bytes per microsecond."""
        return self.device.memory_bandwidth_gbs * 1e3

    @property
    def row_activation(self) -> RowActivation | None:
        """The DRAM channels' row-activation timing (None: memory type not given or not timed)."""
        return memory_types()[self.device.memory_type].activation if self.device.memory_type else None

    def row_activations_per_us(self) -> float:
        """Most DRAM rows the whole GPU can activate per microsecond: channels / max(tRRD, tFAW / 4);
        0.0 where the memory's timing is not known (the ceiling is then not modelled)."""
        timing = self.row_activation
        if timing is None or self.device.memory_bus_bits is None:
            return 0.0
        channels = self.device.memory_bus_bits / timing.channel_bits
        return channels * 1e3 / max(timing.trrd_ns, timing.tfaw_ns / 4.0)

    @property
    def fp32_issue_ratio(self) -> float:
        """Warp instructions the SM can issue per clock over the FP32 warp instructions its lanes can
        execute per clock: 2 when an FFMA occupies a 16-lane unit for two clocks (Volta, Turing,
        GA100) or the scheduler dual-issues (Pascal), 1 on 128-lane single-issue SMs (GA10x, Ada,
        Hopper), where every non-FFMA instruction takes an FFMA's issue slot."""
        lim = self.limits
        return lim.warp_size * lim.warp_instructions_per_clock * lim.register_partitions / self.fp32_lanes_per_sm


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


def _cc_path(compute_capability: str) -> Path:
    path = CC_DIR / f"sm_{compute_capability.replace('.', '')}.yaml"
    if not path.exists():
        known = sorted((p.stem[3:-1] + "." + p.stem[-1] for p in CC_DIR.glob("sm_*.yaml")), key=lambda c: float(c))
        raise SpecError(
            f"compute capability {compute_capability!r} has no limits file (hw_specs/compute_capability/{path.name}: "
            f"per-SM limits and the `arch` facts; copy the nearest one, hw_specs/README.md); known: {', '.join(known)}"
        )
    return path


@cache
def load_limits(compute_capability: str) -> SmLimits:
    """Per-SM limits for a compute capability such as '8.0', from hw_specs/compute_capability."""
    path = _cc_path(compute_capability)
    try:
        return SmLimits(**{k: v for k, v in _read_yaml(path).items() if k != ARCH_KEY})
    except ValidationError as exc:
        raise _first_error(path, exc) from None
    except TypeError as exc:
        raise SpecError(f"{path}: {exc}") from None


# The block of a compute-capability file that holds its architecture facts (ArchFacts).
ARCH_KEY = "arch"


@cache
def load_arch(compute_capability: str) -> ArchFacts:
    """Architecture facts of a compute capability such as '8.0' (the `arch` block of its file)."""
    path = _cc_path(compute_capability)
    block = _read_yaml(path).get(ARCH_KEY)
    if not isinstance(block, dict):
        raise SpecError(
            f"{path}: field '{ARCH_KEY}': missing field (family, fp32_lanes_per_sm, kernel_table, "
            "kernel_prefix, tensor_cores, fused_winograd_tiles, sources; hw_specs/README.md)"
        )
    try:
        return ArchFacts(**block)
    except ValidationError as exc:
        err = _first_error(path, exc)
        raise SpecError(str(err).replace("field '", f"field '{ARCH_KEY}.", 1)) from None
    except TypeError as exc:
        raise SpecError(f"{path}: {exc}") from None


def _check_against_arch(path: Path, device: DeviceFile, arch: ArchFacts) -> None:
    """A device file may repeat its compute capability's family and lanes, but must agree with them; its FP32
    peak must be its lanes' (sm_count x FP32 lanes per SM x 2 FLOP x boost clock) within PEAK_FP32_TOLERANCE."""
    for field, theirs in (("architecture", arch.family), ("fp32_cores_per_sm", arch.fp32_lanes_per_sm)):
        mine = getattr(device, field)
        if mine is not None and mine != theirs:
            raise SpecError(
                f"{path}: field '{field}': {mine!r} disagrees with compute capability "
                f"{device.compute_capability}'s {theirs!r} (hw_specs/compute_capability); delete the field"
            )
    lanes_peak = device.sm_count * arch.fp32_lanes_per_sm * 2 * device.boost_clock_mhz / 1e6
    if abs(device.peak_tflops.fp32 / lanes_peak - 1) > PEAK_FP32_TOLERANCE:
        raise SpecError(
            f"{path}: field 'peak_tflops.fp32': {device.peak_tflops.fp32} disagrees with sm_count "
            f"{device.sm_count} x {arch.fp32_lanes_per_sm} lanes x 2 x boost_clock_mhz {device.boost_clock_mhz:g} = "
            f"{lanes_peak:.1f} TFLOP/s (peaks are at the boost clock; hw_specs/README.md)"
        )


def load_spec_file(path: str | Path) -> GpuSpec:
    """Load and validate one device YAML file, merging its compute capability's limits."""
    path = Path(path)
    raw = _read_yaml(path)
    try:
        device = DeviceFile(**raw)
    except ValidationError as exc:
        raise _first_error(path, exc) from None
    try:
        limits, arch = load_limits(device.compute_capability), load_arch(device.compute_capability)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None
    _check_against_arch(path, device, arch)
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
    digest = hashlib.sha256(
        path.read_bytes() + limits.model_dump_json().encode() + arch.model_dump_json().encode()
    ).hexdigest()[:16]
    return GpuSpec(device=device, limits=limits, arch=arch, path=str(path), content_hash=digest)


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
