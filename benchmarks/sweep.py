"""A 10,000-configuration sweep: end to end on the local default, in-process, and on warm 1- and 2-worker clusters.

The grid: ResNet-50 and MobileNet-V2 x A100 and T4 x 2,500 random width vectors each (every prunable
group at any multiple of 8 from the planner's minimum: few shapes repeat, so every task prices real
work), batch 1, fp16, fused; 1,250 width vectors per task (8 tasks of 0.3-1 s: enough work per task to
amortise the scheduler's few milliseconds, and within a task distinct op shapes are priced once).

1. local: `wavecut sweep`'s default engine (a Dask LocalCluster, one worker process per CPU) from
   nothing to the written CSV, cluster start and each worker's tracing included (local_s);
2. in-process (--workers 0), the reference rows (serial_s);
3. throughput of a warm cluster of 1 and of 2 workers (models traced on every worker first): the
   same tasks, configurations per second from submit to the last result, the best of --repeats runs.
distributed_equals_local: the local default's and the 2-worker cluster's rows equal the in-process
rows (same ids, latencies exactly equal). The machine's load average is printed with the figures:
the 2-worker speedup needs two idle cores.

    python3 -m benchmarks.sweep [--samples 2500] [--chunk 1250] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from planner.network import Setting
from planner.sweep import SweepConfig, dask_client, run_on, run_sweep, tasks, traced
from wavecut.sweep_cmd import local_workers

MODELS = ("resnet50", "mobilenet_v2")
GPUS = ("a100", "t4")


def _warm(models: tuple[str, ...], shape: tuple[int, ...]) -> int:
    """Trace every model and load the compiled engine in this process (run on each worker)."""
    for m in models:
        traced(m, shape)[0].predict_many([Setting()])
    return os.getpid()


def cluster_rate(cfg: SweepConfig, workers: int, repeats: int) -> tuple[float, dict[str, float]]:
    """Configurations per second of a warm `workers`-process cluster on every task of cfg (the best of
    `repeats` runs: other users of the machine only ever slow a run down), and the latencies of the last."""
    todo = tasks(cfg)
    best = 0.0
    with dask_client(None, workers) as client:
        client.run(_warm, tuple(cfg.models), tuple(cfg.input_shape))
        for _ in range(repeats):
            start = time.perf_counter()
            rows = [r for batch in run_on(client, todo) for r in batch]
            best = max(best, len(rows) / (time.perf_counter() - start))
    return best, {r["id"]: r.get("latency_us") for r in rows}


def main() -> None:
    """Print the table; with --json, one JSON object as the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2500, help="width vectors per model and GPU")
    parser.add_argument("--chunk", type=int, default=1250, help="width vectors per task")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per warm cluster (the best is kept)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    cfg = SweepConfig(
        models=list(MODELS),
        gpus=list(GPUS),
        widths={"samples": args.samples, "step": 8, "seed": 0},
        chunk=args.chunk,
    )
    load_before = os.getloadavg()
    workers = local_workers(None)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        local = run_sweep(cfg, Path(tmp) / "local.csv", workers=workers).done
        local_s = time.perf_counter() - start
        start = time.perf_counter()
        serial = run_sweep(cfg, Path(tmp) / "serial.csv").done
        serial_s = time.perf_counter() - start
    reference = {i: float(r["latency_us"]) for i, r in serial.items()}
    rate_1, rows_1 = cluster_rate(cfg, 1, args.repeats)
    rate_2, rows_2 = cluster_rate(cfg, 2, args.repeats)
    errors = sum(1 for r in serial.values() if r["error"])
    equal = (
        not errors
        and {i: float(r["latency_us"]) for i, r in local.items()} == reference
        and {i: float(t) for i, t in rows_2.items()} == reference
        and {i: float(t) for i, t in rows_1.items()} == reference
    )
    result = {
        "configs": len(serial),
        "local_workers": workers,
        "local_s": local_s,
        "serial_s": serial_s,
        "workers_1_per_s": rate_1,
        "workers_2_per_s": rate_2,
        "speedup_2_vs_1": rate_2 / rate_1,
        "distributed_equals_local": equal,
        "errors": errors,
        "cpus": os.cpu_count(),
        "load_average_before": load_before[0],
        "load_average_after": os.getloadavg()[0],
    }
    table = Table(title=f"{len(serial):,} configurations ({', '.join(MODELS)} x {', '.join(GPUS)} x width vectors)")
    for col in ("run", "figure"):
        table.add_column(col)
    table.add_row(f"local default ({workers} Dask workers), end to end", f"{local_s:.1f} s")
    table.add_row("in this process, end to end", f"{serial_s:.1f} s")
    table.add_row(f"warm cluster, 1 worker (best of {args.repeats})", f"{rate_1:,.0f} configs/s")
    table.add_row(
        f"warm cluster, 2 workers (best of {args.repeats})", f"{rate_2:,.0f} configs/s ({rate_2 / rate_1:.2f}x)"
    )
    table.add_row("distributed rows equal the in-process rows", str(equal))
    table.add_row("load average (1 min) before / after", f"{load_before[0]:.2f} / {result['load_average_after']:.2f}")
    Console(width=120).print(table)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
