"""Does the clock sampler disturb the timings it sits beside? Host-bound ops with and without it.

`wavecut validate measure` polls NVML every 5 ms on a background thread while it times each
op. The ops most exposed to that thread are the shortest, whose time is all host (Python)
work. This times small nn.Linear calls on the CPU (the dry-run path of the same harness),
alternating runs without and with a sampler whose reader spends 0.2 ms in C with the GIL
released, as an NVML call does, and prints the median of the per-run medians.

    python3 -m benchmarks.clock_sampler [--runs 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from validation.clocks import ClockSampler, Reading
from validation.measure import time_call

SIZES = (16, 64, 256)


def _nvml_like_reader() -> Reading:
    time.sleep(0.0002)  # C code with the GIL released, like pynvml's ctypes calls
    return 1000.0, 50.0


def compare(runs: int) -> list[dict]:
    """Per size: median over runs of the op's median time (us) without and with the sampler running."""
    import torch

    torch.set_num_threads(1)
    rows = []
    for size in SIZES:
        layer, x = torch.nn.Linear(size, size), torch.randn(size, size)
        fn = lambda layer=layer, x=x: layer(x)  # noqa: E731
        off, on = [], []
        with torch.inference_mode():
            for _ in range(runs):
                off.append(time_call(fn, "cpu").median_us)
                with ClockSampler(_nvml_like_reader):
                    on.append(time_call(fn, "cpu").median_us)
        rows.append(
            {
                "linear": f"{size}x{size}",
                "without_us": float(np.median(off)),
                "with_us": float(np.median(on)),
                "change_pct": float((np.median(on) / np.median(off) - 1) * 100),
            }
        )
    return rows


def main() -> None:
    """Print the table (and one JSON list with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = compare(args.runs)
    print(f"{'nn.Linear':>10s}{'without us':>12s}{'with us':>10s}{'change %':>10s}")
    for r in rows:
        print(f"{r['linear']:>10s}{r['without_us']:12.2f}{r['with_us']:10.2f}{r['change_pct']:10.2f}")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
