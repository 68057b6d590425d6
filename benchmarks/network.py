"""Trace time and predict time per torchvision model, with MACs against the published numbers; and
configurations per second of batched prediction (Network.predict_many) against one at a time.

For each model: build it (weights=None), trace it once at 3x224x224, then predict it on the
default GPU, dtype and mode: the first call (which loads gpusim's compiled engine) and the
median of the following calls for one configuration each (batch 1..REPEATS).

Batched: for ResNet-50 and MobileNet-V2 (--batched-models), CONFIGS random width vectors in two
search spaces, each priced one at a time (WidthModel.predict: every op built and predicted, as
Network.predict does) and in one Network.predict_many call, on identical inputs; the totals must
be equal. "multipliers": every prunable group at 0.25, 0.5, 0.75 or 1.0 of its width rounded up to
8 (the width choices of once-for-all / slimmable NAS spaces); "aligned": any multiple of 8 from
the planner's minimum width (almost every op shape distinct: the worst case for deduplication).
The JSON keys batched_configs_per_s, single_configs_per_s, speedup and results_equal are ResNet-50's
multipliers row. One process, numba and numpy single-threaded: one core.

    python3 -m benchmarks.network [--models resnet50,vit_b_16] [--repeats 20] [--configs 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import numpy as np
import torch
import torchvision
from rich.console import Console
from rich.table import Table

from planner.candidates import WidthModel
from planner.defaults import DEFAULT_BATCH, DEFAULT_DTYPE, DEFAULT_GPU, DEFAULT_INPUT, DEFAULT_MODE
from planner.groups import find_groups
from planner.models import TORCHVISION_MODELS
from planner.network import Network, Setting
from planner.sweep import WidthSamples, width_choices

KEEP_RATIOS = (0.25, 0.5, 0.75, 1.0)
ALIGN = 8

# MACs at 3x224x224 from the torchvision model cards (GFLOPS there count multiply-adds), in GMACs.
PUBLISHED_GMACS = {
    "resnet18": 1.81,
    "resnet50": 4.09,
    "resnet101": 7.80,
    "vgg16": 15.47,
    "mobilenet_v2": 0.30,
    "mobilenet_v3_large": 0.22,
    "efficientnet_b0": 0.39,
    "regnet_y_400mf": 0.40,
    "convnext_tiny": 4.46,
    "vit_b_16": 17.56,
}


def measure(name: str, repeats: int) -> dict:
    """Build, trace and predict one model; times in seconds (trace) and milliseconds (predict)."""
    model = torchvision.models.get_model(name, weights=None)
    start = time.perf_counter()
    net = Network.from_model(model, DEFAULT_INPUT, name)
    trace_s = time.perf_counter() - start
    start = time.perf_counter()
    first = net.predict()
    first_ms = (time.perf_counter() - start) * 1e3
    times = []
    for batch in range(1, repeats + 1):
        start = time.perf_counter()
        net.predict(batch=batch)
        times.append((time.perf_counter() - start) * 1e3)
    conv = sum(1 for op in net.ops() if op.kind == "conv2d")
    return {
        "model": name,
        "trace_s": trace_s,
        "predict_first_ms": first_ms,
        "predict_ms": statistics.median(times),
        "launches": len(first.layers),
        "conv_layers": conv,
        "gmacs": first.macs / 1e9,
        "published_gmacs": PUBLISHED_GMACS.get(name),
        "total_us": first.total_us,
    }


SPACES = {
    "multipliers": WidthSamples(samples=1, keep=list(KEEP_RATIOS)),
    "aligned": WidthSamples(samples=1, step=ALIGN),
}


def measure_batched(name: str, configs: int, seed: int = 0) -> list[dict]:
    """Configurations per second, one at a time and batched, on the same random width vectors of each space."""
    model = torchvision.models.get_model(name, weights=None).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = Network.from_model(model, DEFAULT_INPUT, name)
        groups = find_groups(model, torch.zeros(1, *DEFAULT_INPUT))
    setting = Setting(DEFAULT_GPU, DEFAULT_BATCH, DEFAULT_DTYPE, DEFAULT_MODE)
    net.predict_many([setting])  # loads the compiled engine
    rows = []
    for space in SPACES:
        rng = np.random.default_rng(seed)
        choices = width_choices(groups, SPACES[space])
        widths = np.array([[rng.choice(c) for c in choices] for _ in range(configs)], np.int64)
        start = time.perf_counter()
        batched = net.predict_many([setting], widths, groups)[0]
        batched_s = time.perf_counter() - start
        start = time.perf_counter()
        one = WidthModel(net, groups, setting.gpu, setting.batch, setting.dtype, setting.mode)
        single = np.array([one.predict(w).total_us for w in widths])
        single_s = time.perf_counter() - start
        rel = float(np.max(np.abs(batched / single - 1.0)))
        rows.append(
            {
                "model": name,
                "space": space,
                "configs": configs,
                "batched_configs_per_s": configs / batched_s,
                "single_configs_per_s": configs / single_s,
                "speedup": single_s / batched_s,
                "results_equal": bool(np.array_equal(batched, single)),
                "max_rel_diff": rel,
            }
        )
    return rows


def main() -> None:
    """Print the tables; with --json, one JSON object as the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(TORCHVISION_MODELS), help="comma-separated torchvision names")
    parser.add_argument("--repeats", type=int, default=20, help="predictions timed after the first")
    parser.add_argument("--batched-models", default="resnet50,mobilenet_v2", help="models for the batched table")
    parser.add_argument("--configs", type=int, default=2000, help="width vectors per model and search space")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    rows = [measure(name, args.repeats) for name in args.models.split(",") if name]
    table = Table(title="trace once, predict many (default GPU, dtype and mode; batch 1..repeats)")
    for col in ("model", "trace s", "first predict ms", "predict ms", "launches", "GMACs", "published", "total us"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        published = f"{r['published_gmacs']:.2f}" if r["published_gmacs"] else "-"
        table.add_row(
            r["model"],
            f"{r['trace_s']:.2f}",
            f"{r['predict_first_ms']:.0f}",
            f"{r['predict_ms']:.1f}",
            str(r["launches"]),
            f"{r['gmacs']:.3f}",
            published,
            f"{r['total_us']:.0f}",
        )
    console = Console(width=140)
    console.print(table)
    batched = [r for name in args.batched_models.split(",") if name for r in measure_batched(name, args.configs)]
    table = Table(
        title=f"width vectors per second: one at a time vs Network.predict_many ({DEFAULT_GPU}, {DEFAULT_DTYPE})"
    )
    for col in ("model", "space", "configs", "single /s", "batched /s", "speedup", "equal"):
        table.add_column(col, justify="left" if col in ("model", "space") else "right")
    for r in batched:
        table.add_row(
            r["model"],
            r["space"],
            str(r["configs"]),
            f"{r['single_configs_per_s']:,.0f}",
            f"{r['batched_configs_per_s']:,.0f}",
            f"{r['speedup']:.1f}x",
            str(r["results_equal"]),
        )
    console.print(table)
    if args.json:
        head = next((r for r in batched if r["model"] == "resnet50" and r["space"] == "multipliers"), None)
        summary = {k: head[k] for k in ("batched_configs_per_s", "single_configs_per_s", "speedup")} if head else {}
        summary["results_equal"] = all(r["results_equal"] for r in batched)
        print(json.dumps({**summary, "models": rows, "batched": batched}))


if __name__ == "__main__":
    main()
