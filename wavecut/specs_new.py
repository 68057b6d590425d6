"""`wavecut specs new --from-device`: draft a spec YAML for the CUDA GPU this runs on.

Everything CUDA reports goes in with its source; every number it cannot report is the string
"TODO: ...", which fails `wavecut specs check` until someone fills it in from a datasheet or a
measurement. So a new GPU starts from facts, never from a copied neighbour's numbers.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer
import yaml
from pydantic import BaseModel

from gpusim.atomic_write import write_text_atomic
from gpusim.errors import SpecError, WavecutError
from gpusim.spec import ArchFacts, load_arch, load_limits, memory_types
from wavecut.output import console

READ = "torch.cuda.get_device_properties on the device"
# SmLimits field -> the cudaDeviceProp (torch) field that reports it.
LIMIT_FACTS = {
    "max_threads_per_sm": "max_threads_per_multi_processor",
    "registers_per_sm": "regs_per_multiprocessor",
    "shared_memory_per_sm": "shared_memory_per_multiprocessor",
    "max_shared_memory_per_block": "shared_memory_per_block_optin",
    "max_threads_per_block": "max_threads_per_block",
    "warp_size": "warp_size",
}


class DeviceFacts(BaseModel):
    """What CUDA reports about one GPU (torch.cuda.get_device_properties); 0 where it reports nothing."""

    name: str
    major: int
    minor: int
    multi_processor_count: int
    total_memory: int
    L2_cache_size: int = 0
    clock_rate: int = 0  # kHz, the maximum SM clock
    memory_clock_rate: int = 0  # kHz
    memory_bus_width: int = 0  # bits
    max_threads_per_multi_processor: int = 0
    regs_per_multiprocessor: int = 0
    shared_memory_per_multiprocessor: int = 0
    shared_memory_per_block_optin: int = 0
    max_threads_per_block: int = 0
    warp_size: int = 0

    @property
    def cc(self) -> str:
        """Compute capability as 'major.minor'."""
        return f"{self.major}.{self.minor}"


def _arch(cc: str) -> ArchFacts | None:
    """The compute capability's architecture facts, or None when hw_specs has no file for it yet."""
    try:
        return load_arch(cc)
    except SpecError:
        return None


def slug(name: str) -> str:
    """A file stem for a GPU name: 'NVIDIA A100-PCIE-40GB' -> 'a100-pcie-40gb'."""
    return re.sub(r"[^a-z0-9]+", "-", re.sub(r"^(nvidia|tesla)\s+", "", name.strip().lower())).strip("-")


def _limit_overrides(facts: DeviceFacts) -> tuple[dict[str, int], str]:
    """Per-SM limits where the device disagrees with its compute capability's file, and a note."""
    try:
        limits = load_limits(facts.cc)
    except SpecError:
        read = ", ".join(f"{k}={getattr(facts, v)}" for k, v in LIMIT_FACTS.items())
        return {}, f"compute_capability/sm_{facts.major}{facts.minor}.yaml does not exist yet: create it ({read})"
    overrides = {
        k: getattr(facts, v)
        for k, v in LIMIT_FACTS.items()
        if getattr(facts, v) and getattr(facts, v) != getattr(limits, k)
    }
    return overrides, ""


def draft_spec(facts: DeviceFacts) -> tuple[dict, str]:
    """The device YAML's fields from facts ('TODO: ...' where unknown) and a note for its header."""
    todo = "TODO: fill in from the datasheet, then add its source"
    arch = _arch(facts.cc)
    cores = arch.fp32_lanes_per_sm if arch else None
    tensor = set(arch.tensor_cores) if arch else set()
    boost = facts.clock_rate / 1000 if facts.clock_rate else None
    bandwidth = (
        2 * facts.memory_clock_rate * 1e3 * facts.memory_bus_width / 8 / 1e9 if facts.memory_clock_rate else None
    )
    fp32 = round(facts.multi_processor_count * cores * 2 * boost / 1e6, 2) if cores and boost else None
    peaks = {
        "fp32": fp32 or f"{todo} (dense FP32 TFLOPS at the boost clock)",
        **({"tf32": f"{todo} (dense TF32 tensor TFLOPS)"} if "tf32" in tensor else {}),
        "fp16": f"{todo} (dense FP16 TFLOPS; delete this line if the GPU has no FP16 rate of its own)",
        **({"bf16": f"{todo} (dense BF16 tensor TFLOPS)"} if "bf16" in tensor else {}),
        "int8": f"{todo} (dense INT8 TOPS; delete this line if the GPU has no INT8 rate of its own)",
        **({"fp8": f"{todo} (dense FP8 tensor TFLOPS, FP32 accumulate)"} if "fp8" in tensor else {}),
    }
    overrides, note = _limit_overrides(facts)
    spec = {
        "name": facts.name,
        "aliases": [facts.name, slug(facts.name)],
        "architecture": arch.family if arch else f"TODO: architecture of compute capability {facts.cc}",
        "compute_capability": facts.cc,
        "sm_count": facts.multi_processor_count,
        "fp32_cores_per_sm": cores or f"TODO: FP32 lanes per SM of compute capability {facts.cc}",
        "boost_clock_mhz": boost or f"{todo} (boost clock, MHz)",
        "base_clock_mhz": "TODO: NVIDIA's base clock, MHz (datasheet; sets the sustained clock, hw_specs/README.md)",
        "tdp_w": "TODO: board power limit, W (datasheet)",
        "memory_bandwidth_gbs": round(bandwidth, 1) if bandwidth else f"{todo} (peak DRAM GB/s)",
        "memory_type": f"TODO: the DRAM technology, one of {', '.join(memory_types())} (datasheet)",
        "memory_bus_bits": facts.memory_bus_width or f"{todo} (DRAM interface width, bits)",
        "memory_gb": round(facts.total_memory / 2**30, 1),
        "l2_cache_mb": round(facts.L2_cache_size / 2**20, 2) if facts.L2_cache_size else f"{todo} (L2 size, MB)",
        "peak_tflops": peaks,
        **({"sm_limits": overrides} if overrides else {}),
    }
    sources = {
        "sm_count": f"{READ} (multi_processor_count)",
        "fp32_cores_per_sm": f"compute_capability/sm_{facts.major}{facts.minor}.yaml (arch.fp32_lanes_per_sm)"
        if cores
        else "TODO",
        "boost_clock_mhz": f"{READ} (clock_rate, the maximum SM clock); check against the datasheet"
        if boost
        else "TODO",
        "base_clock_mhz": "TODO",
        "tdp_w": "TODO",
        "memory_bandwidth_gbs": (
            f"derived: 2 x memory_clock_rate {facts.memory_clock_rate / 1000:.0f} MHz x "
            f"{facts.memory_bus_width}-bit bus / 8 ({READ}); check against the datasheet"
            if bandwidth
            else "TODO"
        ),
        "memory_bus_bits": f"{READ} (memory_bus_width)" if facts.memory_bus_width else "TODO",
        "memory_gb": f"{READ} (total_memory, GiB as CUDA reports it; the datasheet figure may be rounder)",
        "l2_cache_mb": f"{READ} (L2_cache_size)" if facts.L2_cache_size else "TODO",
        "peak_tflops": (
            f"fp32 derived: {facts.multi_processor_count} SMs x {cores} FP32 lanes x 2 x {boost:.0f} MHz; "
            "TODO: the others from the datasheet (dense)"
            if fp32
            else "TODO"
        ),
        **{f"sm_limits.{k}": f"{READ} ({LIMIT_FACTS[k]})" for k in overrides},
    }
    return {**spec, "sources": sources}, note


def count_todos(data: object) -> int:
    """How many values in a drafted spec (or part of one) still say TODO."""
    if isinstance(data, dict):
        return sum(count_todos(v) for v in data.values())
    if isinstance(data, list):
        return sum(count_todos(v) for v in data)
    return int(isinstance(data, str) and data.startswith("TODO"))


def read_device_facts(index: int) -> DeviceFacts:
    """DeviceFacts of CUDA device `index`; a one-line error without torch or a CUDA GPU."""
    try:
        import torch
    except ImportError:
        raise WavecutError("specs new --from-device: torch is not installed (pip install 'wavecut[torch]')") from None
    if not torch.cuda.is_available():
        raise WavecutError(
            "specs new --from-device: no CUDA GPU is visible to torch (torch.cuda.is_available() is "
            "False); run it on the machine that has the GPU"
        )
    if not 0 <= index < torch.cuda.device_count():
        raise WavecutError(f"--index: {index} out of range; this machine has {torch.cuda.device_count()} CUDA devices")
    props = torch.cuda.get_device_properties(index)
    return DeviceFacts(
        **{f: getattr(props, f, 0) or 0 for f in DeviceFacts.model_fields if f != "name"}, name=props.name
    )


def new(
    from_device: bool = typer.Option(False, "--from-device", help="read the GPU this machine has (needs CUDA)"),
    out: Path = typer.Option(None, "--out", help="YAML file to write (default: ./<gpu-name>.yaml)"),
    index: int = typer.Option(0, "--index", help="which CUDA device"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing file"),
) -> None:
    """Draft a spec YAML for a new GPU from what CUDA reports; unknown numbers are marked TODO."""
    if not from_device:
        raise WavecutError("specs new: give --from-device (on the GPU's machine), or copy a file in hw_specs/devices/")
    facts = read_device_facts(index)
    spec, note = draft_spec(facts)
    out = out or Path(f"{slug(facts.name)}.yaml")
    if out.exists() and not force:
        raise WavecutError(f"{out}: already exists; pass --force to overwrite or --out to choose another file")
    header = [
        f"# {facts.name}: drafted by `wavecut specs new --from-device`.",
        "# Every 'TODO: ...' is a number CUDA does not report: fill it in from the datasheet or a",
        f"# measurement (hw_specs/README.md), then run `wavecut specs check {out}`.",
    ]
    header += [f"# {note}"] if note else []
    write_text_atomic(out, "\n".join(header) + "\n" + yaml.safe_dump(spec, sort_keys=False, width=110))
    console.print(
        f"wrote {out}: {count_todos({k: v for k, v in spec.items() if k != 'sources'})} values marked TODO; fill them in, then "
        f"`wavecut specs check {out}`",
        highlight=False,
    )
