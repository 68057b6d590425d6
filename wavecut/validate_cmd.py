"""`wavecut validate`: score the simulator on recorded timings, time sweeps on a GPU, or both at once."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, get_args

import typer
from rich.console import Console
from rich.table import Table

from gpusim.atomic_write import write_atomic, write_text_atomic
from gpusim.errors import WavecutError
from wavecut.output import console, pct, print_group_tables, print_json

if TYPE_CHECKING:
    from validation.clock_summary import ClockReport
    from validation.measure import NetworkTask, Task
    from validation.score import Scored, Summary

app = typer.Typer(help="Check the simulator against real GPU timings.", no_args_is_help=True)

DEFAULT_SWEEPS = ("conv3x3", "conv1x1", "depthwise", "linear", "batch", "networks")

# The options every command that reads a timings file shares.
GpuOverride = Annotated[str, typer.Option(help="use this spec for every row instead of the file's device names")]
AsJson = Annotated[bool, typer.Option("--json", help="print one JSON object")]


def _print_summary(summary: Summary) -> None:
    """Rich tables: the headline metrics, then per device and per op."""
    s = summary
    grid = f"{pct(s.grid_match)} of {s.grid_rows} rows" if s.grid_match is not None else "not recorded"
    rho = "-" if s.spearman is None else f"{s.spearman:.3f}"
    console.print(
        f"[bold]{s.rows}[/bold] rows: MAPE {pct(s.mape)}, median APE {pct(s.median_ape)}, "
        f"p90 APE {pct(s.p90_ape)}, Spearman {rho}, predicted CTA count = recorded grid: {grid}",
        highlight=False,
    )
    print_group_tables((("device (as in the file)", s.by_device), ("op", s.by_op)))


def _write_report(scored: Scored, directory: Path) -> Path:
    from validation.report import build_report

    report = build_report(scored)
    for name, fig in report.figures.items():
        write_atomic(directory / name, lambda tmp, fig=fig: fig.savefig(tmp, dpi=110, format="png"))
    return write_text_atomic(directory / "report.md", report.markdown + "\n")


def _score_file(
    data: Path,
    gpu: str | None,
    as_json: bool,
    report: Path | None,
    recorded_clock: bool = False,
    timing: str | None = None,
) -> None:
    from validation.readers import read_timings
    from validation.score import score as score_timings

    scored = score_timings(read_timings(data, timing), gpu, recorded_clock)
    if as_json:
        print_json(scored.summary.model_dump(exclude_none=True))
    else:
        _print_summary(scored.summary)
    if report is not None:
        path = _write_report(scored, report)
        if not as_json:
            console.print(f"wrote {path}")


@app.command("score")
def score(
    data: Path = typer.Option(
        ..., "--data", help="timings CSV: NeuSight's format or the project's (validation/README.md)"
    ),
    gpu: GpuOverride = None,
    as_json: AsJson = False,
    report: Path = typer.Option(None, "--report", help="write report.md and PNG plots into this folder"),
    at_recorded_clock: bool = typer.Option(
        False, "--at-recorded-clock", help="predict rows that recorded their SM clock at that clock, not the spec's"
    ),
    timing: str = typer.Option(
        None,
        "--timing",
        help="what rows without a `timing` column time: op_wall (default: one op timed alone, host included), "
        "gpu_kernel (kernel durations only) or host_wall_step",
    ),
) -> None:
    """Predict every row of a timings file and print MAPE, median/p90 APE, Spearman and grid agreement."""
    _score_file(data, gpu, as_json, report, at_recorded_clock, timing)


@app.command("networks")
def networks(
    data: Path = typer.Option(
        ..., "--data", help="network timings CSV (validation/README.md) or a converted timm file"
    ),
    gpu: GpuOverride = None,
    as_json: AsJson = False,
    report: Path = typer.Option(None, "--report", help="write report.md (every row, worst first) into this folder"),
) -> None:
    """Predict every whole-network row (model, batch, size, precision, mode, device) and print MAPE,
    median/p90 APE, Spearman, and the errors per device and model family."""
    from wavecut.networks_cmd import score_network_file

    score_network_file(data, gpu, as_json, report)


def _print_selection(rows: list[dict], lead: str) -> None:
    """Rich table of validation.selection rows: per GPU (or recorded kernel) choice against pricing."""
    from validation.selection import FIGURE_HEADS, shown_figures

    table = Table(title="GEMM rows that record their kernel: the model's choice against the launch as recorded")
    for col in (lead, "op", "timing", "rows", "priced", *FIGURE_HEADS):
        table.add_column(col, justify="left" if col in (lead, "op", "timing") else "right")
    for r in rows:
        lead_cell, counts = r.get("kernel", r["gpu"]), (str(r["rows"]), str(r["priced"]))
        table.add_row(lead_cell, r["op"], r["timing"], *counts, *shown_figures(r))
    console.print(table)


@app.command("selection")
def selection(
    data: Path = typer.Option(..., "--data", help="timings CSV whose rows record kernel and grid (validate measure)"),
    gpu: GpuOverride = None,
    kernels: bool = typer.Option(False, "--kernels", help="one row per GPU, op and recorded kernel"),
    as_json: AsJson = False,
    timing: str = typer.Option(None, "--timing", help="what rows without a `timing` column time (as validate score)"),
) -> None:
    """Kernel choice or pricing: each row priced as the library launched it (its kernel by name, split-K from
    its grid) next to the model's own choice, so a GEMM miss splits into the two."""
    from validation.readers import read_timings
    from validation.selection import by_kernel, priced_groups, summary

    groups = priced_groups([read_timings(data, timing)], gpu)
    rows, per_kernel = summary(groups), by_kernel(groups) if kernels else []
    if as_json:
        print_json({"by_gpu": rows, "by_kernel": per_kernel})
        return
    _print_selection(rows, "device (as in the file)")
    if per_kernel:
        _print_selection(per_kernel, "recorded kernel")


def _print_clocks(report: ClockReport) -> None:
    """Rich tables: per device the spec's clocks and the suggestion, then the sustained rows' clocks per group."""
    from validation.clock_summary import SUSTAINED_US

    table = Table(title=f"SM clock over rows timed at >= {SUSTAINED_US:.0f} us per call (MHz)")
    for col in ("device (as in the file)", "spec", "boost", "spec sustained", "rows", "suggested sustained"):
        table.add_column(col, justify="left" if col in ("device (as in the file)", "spec") else "right")
    for d in report.devices:
        suggested = "-" if d.suggested_sustained_mhz is None else f"{d.suggested_sustained_mhz:.0f}"
        table.add_row(
            d.device, d.spec_path, f"{d.boost_mhz:.0f}", f"{d.spec_sustained_mhz:.0f}", str(d.sustained_rows), suggested
        )
    console.print(table)
    groups = Table()
    for col in ("device", "dtype", "op", "rows", "median", "p10", "p90"):
        groups.add_column(col, justify="left" if col in ("device", "dtype", "op") else "right")
    for g in report.groups:
        groups.add_row(
            g.device, g.dtype, g.op, str(g.rows), f"{g.median_mhz:.0f}", f"{g.p10_mhz:.0f}", f"{g.p90_mhz:.0f}"
        )
    console.print(groups)


@app.command("clocks")
def clocks(
    data: Path = typer.Option(..., "--data", help="timings CSV in the project's format with sm_clock_mhz recorded"),
    gpu: GpuOverride = None,
    as_json: AsJson = False,
) -> None:
    """Compare the SM clocks recorded while timing with each spec's sustained clock, and suggest one."""
    from validation.clock_summary import summarize_clocks
    from validation.readers import read_timings

    report = summarize_clocks(read_timings(data), gpu)
    if as_json:
        print_json(report.model_dump())
    else:
        _print_clocks(report)


def _parse_dtypes(text: str | None) -> list[str] | None:
    from validation.sweeps import MeasureDtype

    if text is None:
        return None
    allowed = get_args(MeasureDtype)
    dtypes = [d.strip() for d in text.split(",") if d.strip()]
    bad = [d for d in dtypes if d not in allowed]
    if bad or not dtypes:
        raise WavecutError(f"--dtype: {text!r} must be a comma list of {', '.join(allowed)}")
    return dtypes


def _measure_to_csv(tasks: list[Task], device: str, l2_flush: bool, out: Path) -> Path:
    """Time every task with a progress bar (on stderr) and write the project CSV atomically."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from validation.measure import measure
    from validation.project_format import COLUMNS

    rows = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        bar = progress.add_task(f"timing on {device}", total=len(tasks))
        for row in measure(tasks, device, l2_flush):
            rows.append(row)
            progress.update(bar, advance=1, description=f"{row['sweep']} {row['dtype']}")

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    return write_atomic(out, write)


@app.command("measure")
def measure(
    sweep: str = typer.Option(..., "--sweep", help="a shipped sweep name (validation/sweeps/) or a sweep YAML file"),
    out: Path = typer.Option(..., "--out", help="CSV to write (the project's format)"),
    device: str = typer.Option("cuda", help="cuda, cuda:N, or cpu for a dry run of the same plumbing"),
    dtype: str = typer.Option(None, help="comma list replacing the sweep's dtypes, e.g. fp16,fp32"),
    l2_flush: bool = typer.Option(False, "--l2-flush", help="flush L2 between repeats"),
) -> None:
    """Time a sweep's ops with torch (CUDA events, profiler kernel names, grids and blocks)."""
    from validation.measure import check_device, plan_networks, plan_tasks
    from validation.sweeps import load_sweep

    device = check_device(device)
    loaded = load_sweep(sweep)
    tasks = plan_tasks(loaded, _parse_dtypes(dtype))
    networks = plan_networks(loaded)
    if tasks:
        path = _measure_to_csv(tasks, device, l2_flush, out)
        console.print(f"wrote {len(tasks)} rows to {path}")
    if networks:
        path = _networks_to_csv(networks, device, _networks_path(out, bool(tasks)))
        console.print(f"wrote {len(networks)} network rows to {path}")


def _networks_path(out: Path, with_ops: bool) -> Path:
    """Where whole-network rows go: `out` itself, or beside op rows as <stem>_networks.csv."""
    return out.with_name(f"{out.stem}_networks{out.suffix}") if with_ops else out


def _networks_to_csv(tasks: list[NetworkTask], device: str, out: Path) -> Path:
    """Time every whole network (validation.measure.measure_networks) and write the network CSV atomically."""
    from validation.measure import measure_networks
    from validation.networks import NETWORK_COLUMNS

    rows = list(measure_networks(tasks, device))

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=NETWORK_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    return write_atomic(out, write)


@app.command("run")
def run(
    out_dir: Path = typer.Option(None, "--out-dir", help="default: validation/data/<spec file name>/"),
    gpu: str = typer.Option(None, help="spec to score on (default: the spec whose aliases hold the device's name)"),
    dtype: str = typer.Option("fp16", help="comma list of dtypes to time"),
    device: str = typer.Option("cuda", help="cuda or cuda:N (cpu: a dry run)"),
    l2_flush: bool = typer.Option(False, "--l2-flush", help="flush L2 between repeats"),
    sweeps: str = typer.Option(",".join(DEFAULT_SWEEPS), help="comma list of shipped sweep names or sweep files"),
) -> None:
    """On a GPU machine: time the default sweeps, score them and write the report (about ten minutes)."""
    import validation
    from gpusim.errors import SpecError
    from gpusim.spec import load_spec
    from validation.measure import check_device, device_name, plan_networks, plan_tasks
    from validation.sweeps import load_sweep

    device = check_device(device)
    name = device_name(device)
    try:
        spec = load_spec(gpu or name)
    except SpecError:
        if gpu:
            raise
        raise WavecutError(
            f"no spec answers to this device's name {name!r}: run `wavecut specs new --from-device`, "
            f"fill it in and add {name!r} to its aliases, or pass --gpu NAME"
        ) from None
    dtypes = _parse_dtypes(dtype)
    loaded = [load_sweep(sweep.strip()) for sweep in sweeps.split(",") if sweep.strip()]
    tasks = [t for sweep in loaded for t in plan_tasks(sweep, dtypes)]
    networks = [t for sweep in loaded for t in plan_networks(sweep)]
    out_dir = out_dir or Path(validation.__file__).resolve().parent / "data" / Path(spec.path).stem
    if tasks:
        data = _measure_to_csv(tasks, device, l2_flush, out_dir / "measurements.csv")
        console.print(f"wrote {len(tasks)} rows to {data}")
        _score_file(data, gpu, False, out_dir / "report")
        _clocks_of_run(data, gpu, out_dir / "report" / "clocks.json")
    if networks:
        from wavecut.networks_cmd import score_network_file

        data = _networks_to_csv(networks, device, out_dir / "networks.csv")
        console.print(f"wrote {len(networks)} network rows to {data}")
        score_network_file(data, gpu, False, out_dir / "report" / "networks")


def _clocks_of_run(data: Path, gpu: str | None, out: Path) -> None:
    """After a run: the recorded clocks against the spec, the score at those clocks, and clocks.json."""
    from validation.clock_summary import summarize_clocks
    from validation.readers import read_timings
    from validation.score import score as score_timings

    timings = read_timings(data)
    if all(m.sm_clock_mhz is None for m in timings.measurements):
        console.print("no SM clock was recorded (neither NVML through nvidia-ml-py nor nvidia-smi answered)")
        return
    report = summarize_clocks(timings, gpu)
    _print_clocks(report)
    at_clock = score_timings(timings, gpu, recorded_clock=True).summary
    console.print(f"predicted at the recorded clocks: MAPE {pct(at_clock.mape)}, median APE {pct(at_clock.median_ape)}")
    path = write_text_atomic(out, report.model_dump_json(indent=2) + "\n")
    console.print(f"wrote {path}")
