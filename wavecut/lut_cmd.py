"""`wavecut lut MODEL --gpu NAME --out lut.json|csv`: per channel group, the predicted latency at each candidate width."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from gpusim.eager import PLAIN_PRECISIONS, check_plain_precision
from gpusim.spec import load_spec
from planner.defaults import DEFAULT_BATCH, DEFAULT_DTYPE, DEFAULT_GPU, DEFAULT_INPUT, DEFAULT_MODE, check_mode
from wavecut.output import console
from wavecut.predict_cmd import parse_input


def lut(
    model: str = typer.Argument(..., help="torchvision name, package.module:factory, or a torch.save file"),
    gpu: str = typer.Option(DEFAULT_GPU, help="GPU name, alias or spec file"),
    batch: int = typer.Option(DEFAULT_BATCH, help="batch size"),
    dtype: str = typer.Option(DEFAULT_DTYPE, help=", ".join(PLAIN_PRECISIONS)),
    mode: str = typer.Option(DEFAULT_MODE, help="eager (one kernel per PyTorch op) or fused (conv+BN+act+add)"),
    input_shape: str = typer.Option("x".join(map(str, DEFAULT_INPUT)), "--input", help="input shape without batch"),
    step: int = typer.Option(None, "--step", help="every N channels from the minimum width (default: step edges)"),
    out: Path = typer.Option(..., "--out", help="lut.json or lut.csv (format: docs/sweeps.md)"),
) -> None:
    """Write a latency lookup table: per channel group, the network latency at each candidate width, others full."""
    shape = parse_input(input_shape)
    check_mode(mode)
    check_plain_precision(dtype)
    load_spec(gpu)
    from planner.lut import check_out, latency_table

    check_out(out)
    from planner.network import Setting
    from planner.sweep import traced

    start = time.perf_counter()
    network, groups = traced(model, shape)
    table = latency_table(network, groups, Setting(gpu, batch, dtype, mode), shape, step)
    table.write(out)
    rows = sum(len(g.widths) for g in table.groups)
    prunable = sum(1 for g in table.groups if not g.locked)
    console.print(
        f"{out}: {rows} widths of {len(table.groups)} groups ({prunable} prunable), {table.candidates}; "
        f"{model} on {table.gpu} {table.full_latency_us:.1f} us at full width; {time.perf_counter() - start:.1f} s"
    )
