"""`wavecut sweep CONFIG.yaml`: run a declared grid of predictions and plans into a resumable CSV table."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from gpusim.errors import WavecutError
from wavecut.output import console


def local_workers(workers: int | None) -> int:
    """Workers of the local default: --workers as given, else one Dask process per CPU (0: in this process,
    also the fallback when Dask is not installed)."""
    if workers is not None:
        if workers < 0:
            raise WavecutError(f"--workers: must be 0 (in this process) or more, got {workers}")
        return workers
    return os.cpu_count() or 1 if importlib.util.find_spec("distributed") else 0


def sweep(
    config: Path = typer.Argument(..., help="sweep config YAML (docs/sweeps.md)"),
    out: Path = typer.Option(None, "--out", help="results CSV (default: the config's name with .csv)"),
    workers: int = typer.Option(
        None, "--workers", help="local Dask worker processes (default: one per CPU; 0: in this process)"
    ),
    scheduler: str = typer.Option(None, "--scheduler", help="run on a Dask cluster, e.g. tcp://10.0.0.5:8786"),
    retry_errors: bool = typer.Option(False, "--retry-errors", help="run failed configurations again"),
) -> None:
    """Run every configuration of the grid not yet in the results file; rows are written as they finish."""
    from planner.sweep import load_config, run_sweep

    cfg = load_config(config)
    out = out or config.with_suffix(".csv")
    n_workers = 0 if scheduler else local_workers(workers)
    engine = (
        f"Dask scheduler {scheduler}"
        if scheduler
        else f"{n_workers} local Dask workers"
        if n_workers
        else "this process"
    )
    start = time.perf_counter()
    errors = 0
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:
        bar = progress.add_task(f"sweep on {engine}", total=None)

        def on_start(done: int, todo: int) -> None:
            progress.update(bar, total=todo)
            if done:
                progress.console.print(f"{out}: {done} configurations already done, {todo} to run")

        def on_rows(rows: list[dict]) -> None:
            nonlocal errors
            errors += sum(1 for r in rows if r.get("error"))
            progress.advance(bar, len(rows))

        results = run_sweep(cfg, out, scheduler, n_workers, retry_errors, on_start, on_rows)
    console.print(
        f"{out}: {len(results.done)} rows ({errors} new with an error) in {time.perf_counter() - start:.1f} s"
    )
