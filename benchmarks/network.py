"""Trace time and predict time per torchvision model, with MACs against the published numbers.

For each model: build it (weights=None), trace it once at 3x224x224, then predict it on the
default GPU, dtype and mode: the first call (which loads gpusim's compiled engine) and the
median of the following calls for one configuration each (batch 1..REPEATS).

    python3 -m benchmarks.network [--models resnet50,vit_b_16] [--repeats 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torchvision
from rich.console import Console
from rich.table import Table

from planner.defaults import DEFAULT_INPUT
from planner.models import TORCHVISION_MODELS
from planner.network import Network

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


def main() -> None:
    """Print the table; with --json, one JSON object as the last line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(TORCHVISION_MODELS), help="comma-separated torchvision names")
    parser.add_argument("--repeats", type=int, default=20, help="predictions timed after the first")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    rows = [measure(name, args.repeats) for name in args.models.split(",")]
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
    Console(width=140).print(table)
    if args.json:
        print(json.dumps({"models": rows}))


if __name__ == "__main__":
    main()
