"""How far the FP32 operand-strip term (gpusim.engine.operand_strip_time) reaches beyond the GPUs it was fitted on.

Prices NeuSight's 1,040 nn.Linear shapes (../shared/data/measured/neusight/linear.csv, the A100's rows) in FP32 on
each GPU twice, with the shipped constants and with the strips free (strided_dram_efficiency set to 1e9), and
counts the shapes the strips make slower by more than 2%, 1.5x and 2x (docs/accuracy.md, "Where the targets are
missed": an extrapolation on bandwidth-poor GA10x/Ada cards that no shared row checks).

    python3 -m benchmarks.strip_reach [--gpus l4,a40,...] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from gpusim.calibration import CONSTANT_NAMES
from gpusim.predict import LoweredOps
from gpusim.spec import load_spec
from validation.calibrate import SHARED_MEASURED, load_datasets

GPUS = (
    "a100-pcie-40gb",
    "h100-sxm",
    "h100-pcie",
    "t4",
    "v100-pcie",
    "p100",
    "p4",
    "l4",
    "a10",
    "a40",
    "rtx3090",
    "rtx4090",
    "l40s",
)
LINEAR = SHARED_MEASURED / "neusight" / "linear.csv"


def reach(gpus: list[str]) -> list[dict]:
    """Per GPU: how many of the shapes the strips slow down, and by how much (median where they bind)."""
    ops = next(s for s in load_datasets([LINEAR]) if "A100" in s.device).lowered.ops
    rows = []
    for gpu in gpus:
        lowered = LoweredOps(ops, load_spec(gpu), "fp32")
        free = lowered.consts.copy()
        free[CONSTANT_NAMES.index("strided_dram_efficiency")] = 1e9
        ratio = lowered.op_times() / lowered.op_times(free)
        binds = ratio > 1.02
        rows.append(
            {
                "gpu": gpu,
                "shapes": len(ratio),
                "slower_2pct": int(binds.sum()),
                "slower_1_5x": int((ratio > 1.5).sum()),
                "slower_2x": int((ratio > 2).sum()),
                "median_where_binding": float(np.median(ratio[binds])) if binds.any() else 1.0,
            }
        )
    return rows


def main() -> None:
    """Print the table (and one JSON object last with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", default=",".join(GPUS), help="comma-separated GPU names")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not LINEAR.exists():
        sys.exit(f"benchmarks.strip_reach: {LINEAR} is absent (../shared)")
    rows = reach([g for g in args.gpus.split(",") if g])
    print(f"{'gpu':16s} {'shapes':>6s} {'>2%':>5s} {'>1.5x':>6s} {'>2x':>5s} {'median where binding':>21s}")
    for r in rows:
        print(
            f"{r['gpu']:16s} {r['shapes']:6d} {r['slower_2pct']:5d} {r['slower_1_5x']:6d} {r['slower_2x']:5d} "
            f"{r['median_where_binding']:21.2f}"
        )
    if args.json:
        print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
