"""How fast each GPU ran its large linear GEMMs, by reduction depth K, read off the shared data without the model.

The deep-K operand-strip term (gpusim.engine.operand_strip_time) exists for the slowdown of large FP32
GEMMs at large K. This table says where the data show it: for every shared GPU, the median achieved
TFLOP/s (2 x rows x K x outputs / time) of its `nn.Linear` rows with at least MIN_ROWS rows and MIN_OUT
outputs that ran at least MIN_ROW_US, per K (in_features) and per band of the two operands' size
((rows + outputs) x K x 4 bytes), so that depth and footprint can be told apart. `--data FILE` reads any
timings file instead (`wavecut validate measure` writes one on your GPU): only its FP32 linear rows count,
the rows the term prices.

    python3 -m validation.deep_k [--data FILE] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from gpusim.errors import WavecutError
from gpusim.ops import Linear
from validation.calibrate import SHARED_MEASURED
from validation.readers import read_timings

LINEAR_FILE = SHARED_MEASURED / "neusight" / "linear.csv"
MIN_ROWS, MIN_OUT, MIN_K, MIN_ROW_US = 1024, 1024, 2048, 2000.0
# operand-footprint bands: (label, upper edge in MiB)
FOOTPRINT_BANDS = (("<= 1 GiB", 1024.0), ("> 1 GiB", float("inf")))


def rates(path: Path = LINEAR_FILE) -> dict[tuple[str, int, str], list[float]]:
    """The achieved TFLOP/s of each qualifying FP32 linear row of a timings file (default: NeuSight's), by
    (GPU, K, footprint band label)."""
    out: dict[tuple[str, int, str], list[float]] = defaultdict(list)
    for m in read_timings(path).measurements:
        op = m.op
        if not isinstance(op, Linear) or m.dtype != "fp32" or m.latency_us < MIN_ROW_US or op.in_features < MIN_K:
            continue
        if op.batch < MIN_ROWS or op.out_features < MIN_OUT:
            continue
        footprint_mib = (op.batch + op.out_features) * op.in_features * 4 / 2**20
        band = next(label for label, edge in FOOTPRINT_BANDS if footprint_mib <= edge)
        out[(m.device, op.in_features, band)].append(op.flops / m.latency_us / 1e6)
    return out


def main() -> None:
    """Print one table per footprint band: median TFLOP/s per K (rows) and GPU (columns)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=LINEAR_FILE, help="timings file (default: NeuSight's linear.csv)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        table = rates(args.data)
    except WavecutError as exc:  # a user's file: one line naming it, exit 2, no traceback
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    gpus = sorted({g for g, _, _ in table})
    depths = sorted({k for _, k, _ in table})
    cells = []
    print(f"median TFLOP/s of linear rows with >= {MIN_ROWS} rows and outputs, K >= {MIN_K}, >= {MIN_ROW_US:g} us")
    for label, _ in FOOTPRINT_BANDS:
        print(f"\noperands {label}\n{'K':>8s}" + "".join(f"{g.replace('Tesla ', '')[:20]:>22s}" for g in gpus))
        for k in depths:
            line = f"{k:>8d}"
            for g in gpus:
                values = table.get((g, k, label), [])
                median = float(np.median(values)) if values else None
                line += f"{'-' if median is None else f'{median:.2f} ({len(values)})':>22s}"
                if values:
                    cells.append({"gpu": g, "k": k, "footprint": label, "rows": len(values), "median_tflops": median})
            print(line)
    if args.json:
        print(json.dumps({"cells": cells}))


if __name__ == "__main__":
    main()
