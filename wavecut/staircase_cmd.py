"""`wavecut staircase`: sweep one dimension of one op and show the latency steps."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from gpusim.attention import ScaledDotProductAttention
from gpusim.dtypes import DTYPE_BYTES
from gpusim.errors import WavecutError
from gpusim.kernels import kernel_table
from gpusim.ops import Conv2d, Linear, Matmul, Op
from gpusim.spec import DEFAULT_GPU, load_spec
from gpusim.staircase import StairPoint, step_edges, sweep
from wavecut.output import console, print_json

OPS = ("conv2d", "depthwise", "linear", "bmm", "sdpa")
MAX_POINTS = 100_000  # a sweep longer than this is a typo (1:10000000), not a plot anyone reads


def parse_range(text: str, option: str) -> list[int]:
    """'64' -> [64]; '1:512' -> 1..512; '8:512:8' -> 8, 16, ..., 512 (inclusive)."""
    try:
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        raise WavecutError(f"{option}: {text!r} is not N, A:B or A:B:STEP with whole numbers") from None
    if len(parts) == 1:
        return parts
    if len(parts) > 3 or parts[0] < 1 or parts[1] < parts[0] or (len(parts) == 3 and parts[2] < 1):
        raise WavecutError(f"{option}: {text!r} must be A:B or A:B:STEP with 1 <= A <= B and STEP >= 1")
    values = range(parts[0], parts[1] + 1, parts[2] if len(parts) == 3 else 1)
    if len(values) > MAX_POINTS:
        raise WavecutError(f"{option}: {text!r} sweeps {len(values):,} values; at most {MAX_POINTS:,} (use a STEP)")
    return list(values)


def _template(op: str, batch: int, cin: int, cout: int, size: int, kernel: int, stride: int, padding: int | None) -> Op:
    pad = kernel // 2 if padding is None else padding
    if op == "conv2d":
        return Conv2d(batch, cin, cout, size, size, kernel, stride, pad)
    if op == "depthwise":
        return Conv2d(batch, cin, cin, size, size, kernel, stride, pad, groups=cin)
    if op == "linear":
        return Linear(batch, cin, cout)
    if op == "sdpa":
        return ScaledDotProductAttention(batch, cout, size, size, cin)
    return Matmul(batch, size, cout, cin)


# Which op field each CLI option sweeps, per op.
_FIELDS = {
    "conv2d": {
        "--batch": "batch",
        "--in-channels": "in_channels",
        "--out-channels": "out_channels",
        "--size": ("height", "width"),
    },
    "depthwise": {
        "--batch": "batch",
        "--in-channels": ("in_channels", "out_channels", "groups"),
        "--size": ("height", "width"),
    },
    "linear": {"--batch": "batch", "--in-channels": "in_features", "--out-channels": "out_features"},
    "bmm": {"--batch": "batch", "--in-channels": "k", "--out-channels": "n", "--size": "m"},
    "sdpa": {"--batch": "batch", "--in-channels": "head_dim", "--out-channels": "heads", "--size": ("q_len", "kv_len")},
}


def _plot(points: list[StairPoint], title: str, path: Path) -> None:
    from wavecut.plots import plot_staircase

    plot_staircase(points, title, path)


def staircase(
    gpu: str = typer.Option(DEFAULT_GPU, help="GPU name, alias or spec file"),
    op: str = typer.Option("conv2d", help=f"one of {', '.join(OPS)}"),
    batch: str = typer.Option("32", help="batch (rows for linear); N, A:B or A:B:STEP"),
    in_channels: str = typer.Option("256", help="input channels (K for linear/bmm, head dim for sdpa)"),
    out_channels: str = typer.Option("1:512", help="output channels (N for linear/bmm, heads for sdpa)"),
    size: str = typer.Option("14", help="input height = width (M for bmm, sequence length for sdpa)"),
    kernel: int = typer.Option(3, help="kernel size"),
    stride: int = typer.Option(1),
    padding: int = typer.Option(None, help="default: kernel // 2"),
    dtype: str = typer.Option("fp16", help=", ".join(DTYPE_BYTES)),
    as_json: bool = typer.Option(False, "--json", help="print a JSON list of points"),
    plot: Path = typer.Option(None, help="write a plot of the staircase (.png, .svg or .pdf)"),
) -> None:
    """Sweep one dimension (the option given as A:B) of one op and print the latency staircase."""
    if op not in OPS:
        raise WavecutError(f"--op: unknown op {op!r}; allowed: {', '.join(OPS)}")
    if plot is not None:
        from wavecut.plots import plot_format

        plot_format(plot)  # refuse an unknown extension before sweeping
    given = {"--batch": batch, "--in-channels": in_channels, "--out-channels": out_channels, "--size": size}
    if op == "depthwise":
        given["--out-channels"] = "1"
    ranges = {k: parse_range(v, k) for k, v in given.items()}
    swept = [k for k, v in ranges.items() if len(v) > 1]
    if len(swept) != 1:
        raise WavecutError(f"give exactly one of {', '.join(_FIELDS[op])} as a range A:B (got {len(swept)})")
    option = swept[0]
    if option not in _FIELDS[op]:
        raise WavecutError(f"{option}: cannot be swept for --op {op}; allowed: {', '.join(_FIELDS[op])}")
    fixed = {k: v[0] for k, v in ranges.items()}
    template = _template(
        op, fixed["--batch"], fixed["--in-channels"], fixed["--out-channels"], fixed["--size"], kernel, stride, padding
    )
    field = _FIELDS[op][option]
    values = ranges[option]
    points = sweep(template, field, values, gpu, dtype)
    fallback = kernel_table(load_spec(gpu)).fallback  # a GPU whose compute capability has no tuned kernel table
    if fallback:
        print(f"wavecut: note: {fallback}", file=sys.stderr)
    key = option.lstrip("-").replace("-", "_")
    if as_json:
        print_json(
            [
                {
                    key: p.value,
                    "latency_us": p.latency_us,
                    "kernel": p.kernel,
                    "grid": p.grid,
                    "ctas_per_sm": p.ctas_per_sm,
                    "waves": p.waves,
                    "tail_fill": p.tail_fill,
                    **({"fallback": fallback} if fallback else {}),
                }
                for p in points
            ]
        )
    else:
        _print_steps(points, key)
    if plot is not None:
        _plot(points, f"{op} on {gpu} ({dtype}), sweeping {key}", plot)
        if not as_json:
            console.print(f"wrote {plot}")


def _print_steps(points: list[StairPoint], key: str) -> None:
    table = Table(title=f"step edges (the most {key} for each latency)")
    for col in (key, "latency us", "kernel", "grid", "CTAs/SM", "waves", "tail fill"):
        table.add_column(col)
    for p in step_edges(points):
        table.add_row(
            str(p.value),
            f"{p.latency_us:.1f}",
            p.kernel,
            str(p.grid),
            str(p.ctas_per_sm),
            str(p.waves),
            f"{p.tail_fill:.2f}",
        )
    console.print(table)
