"""`wavecut specs`: list, show and check GPU spec files."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from rich.table import Table

from gpusim.errors import SpecError
from gpusim.kernels import kernel_table
from gpusim.spec import MATH_UNITS, GpuSpec, alias_clash, list_specs, load_spec, load_spec_file
from wavecut.output import console, print_json
from wavecut.specs_new import new

app = typer.Typer(help="GPU spec files: list them, show one, check a new one.", invoke_without_command=True)
app.command("new")(new)


def clocks(spec: GpuSpec) -> dict[str, dict]:
    """Per math unit: the sustained clock, what it rests on (basis), how far to trust it and the rule's inputs."""
    return {unit: spec.clock(unit).model_dump(exclude={"unit"}) for unit in MATH_UNITS}


def row_activations(spec: GpuSpec) -> dict:
    """The DRAM row-activation ceiling of K-major GEMM operands (hw_specs/README.md, "Memory"): the memory
    technology, its timing and sources, the rows per us and what that is in 32-byte visits; or why none."""
    timing = spec.row_activation
    if timing is None:
        why = "no memory_type in the device file" if spec.device.memory_type is None else "no sourced timing"
        return {"memory_type": spec.device.memory_type, "modelled": False, "why": why}
    rate = spec.row_activations_per_us()
    return {
        "memory_type": spec.device.memory_type,
        "modelled": True,
        "rows_per_us": round(rate, 1),
        "gbs_at_32_byte_visits": round(rate * 32 / 1e3, 1),
        "timing": timing.model_dump(),
    }


def _summary(spec: GpuSpec) -> dict:
    d = spec.device
    cuda, tensor = spec.clock("cuda_cores"), spec.clock("tensor_cores")
    return {
        "name": d.name,
        "aliases": d.aliases,
        "sm_count": d.sm_count,
        "architecture": spec.architecture,
        "compute_capability": d.compute_capability,
        "boost_clock_mhz": d.boost_clock_mhz,
        "sustained_clock_mhz": cuda.mhz,
        "clock_basis": cuda.basis,
        "clock_confidence": cuda.confidence,
        "tensor_clock_mhz": tensor.mhz,
        "tensor_clock_basis": tensor.basis,
        "tensor_clock_confidence": tensor.confidence,
        "memory_bandwidth_gbs": d.memory_bandwidth_gbs,
        "peak_tflops": d.peak_tflops.model_dump(exclude_none=True),
        "file": Path(spec.path).name,
    }


@app.callback()
def specs(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="print a JSON list")) -> None:
    """List the GPU specs shipped with wavecut."""
    if ctx.invoked_subcommand is not None:
        return
    rows = [_summary(s) for s in list_specs()]
    if as_json:
        print_json(rows)
        return
    table = Table(title="GPU specs")
    columns = (
        "file",
        "name",
        "CC",
        "SMs",
        "clock MHz CUDA/tensor/boost",
        "confidence CUDA/tensor",
        "FP32/FP16 TFLOPS",
        "GB/s",
    )
    for col in columns:
        table.add_column(col)
    for r in rows:
        p = r["peak_tflops"]
        table.add_row(
            r["file"],
            r["name"],
            r["compute_capability"],
            str(r["sm_count"]),
            f"{r['sustained_clock_mhz']:.0f}/{r['tensor_clock_mhz']:.0f}/{r['boost_clock_mhz']:.0f}",
            f"{r['clock_confidence']} ({r['clock_basis']}) / {r['tensor_clock_confidence']} ({r['tensor_clock_basis']})",
            f"{p['fp32']}/{p.get('fp16', '-')}",
            f"{r['memory_bandwidth_gbs']:.0f}",
        )
    console.print(table)


@app.command("show")
def show(
    name: str = typer.Argument(..., help="GPU name, alias or spec file"), as_json: bool = typer.Option(False, "--json")
) -> None:
    """Show one spec with its per-SM limits, the clock each math unit runs at (with its basis and confidence)
    and the sources."""
    spec = load_spec(name)
    table = kernel_table(spec)
    data = {
        "device": spec.device.model_dump(exclude_none=True),
        "architecture": spec.arch.model_dump(),
        "kernel_table": {"sm": table.cc, "fallback": table.fallback},
        "clocks": clocks(spec),
        "row_activations": row_activations(spec),
        "limits": spec.limits.model_dump(),
        "file": spec.path,
        "content_hash": spec.content_hash,
    }
    if as_json:
        print_json(data)
    else:
        console.print(yaml.safe_dump(data, sort_keys=False, width=100), highlight=False)


@app.command("check")
def check(path: Path = typer.Argument(..., help="a spec YAML file")) -> None:
    """Validate a spec file: exit 0 and a summary if it is usable, one error line and exit 2 if not."""
    spec = load_spec_file(path)
    clash = alias_clash(spec)
    if clash:
        raise SpecError(f"{clash}; an alias may appear in only one file")
    table = kernel_table(spec)
    kernels = f"kernel table sm_{table.cc}" + (f" (fallback: {table.fallback})" if table.fallback else "")
    console.print(
        f"{path}: ok: {spec.name}, CC {spec.device.compute_capability} ({spec.architecture}), {spec.sm_count} SMs, "
        f"clocks used {spec.sustained_clock_mhz:.0f} MHz (CUDA cores, {spec.clock('cuda_cores').basis}), "
        f"{spec.clock('tensor_cores').mhz:.0f} MHz (tensor cores, {spec.clock('tensor_cores').basis}), {kernels}",
        highlight=False,
    )
