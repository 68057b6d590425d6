"""Whole-network accuracy on the shared timm RTX 3090 files against the target (MAPE <= 15%,
Spearman >= 0.95), per file and over all rows, with the wall time of the scoring.

    python3 -m benchmarks.timm_networks [--files pt240-cu124,pt210-cu121] [--json]

The last line of --json output is one JSON object. The same predictions as
`wavecut validate networks --data FILE` (wavecut.networks_cmd.NetworkPredictor).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from validation.networks import read_network_timings, score_networks, summarize_networks
from wavecut.networks_cmd import NetworkPredictor

TIMM = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "measured" / "timm"
FILES = ("pt113-cu117", "pt210-cu121", "pt240-cu124")
TARGET_MAPE, TARGET_SPEARMAN = 15.0, 0.95


def main() -> None:
    """Score each file, then all rows together; print a table (or one JSON object)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", default=",".join(FILES), help="comma list of file tags")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results, rows, predicted = {}, [], []
    predictor = NetworkPredictor()
    for tag in args.files.split(","):
        start = time.perf_counter()
        scored = score_networks(read_network_timings(TIMM / f"timm_infer_rtx3090_amp-nchw-{tag}.csv"), predictor)
        s = scored.summary
        results[tag] = {
            "rows": s.rows,
            "mape": s.mape,
            "median_ape": s.median_ape,
            "p90_ape": s.p90_ape,
            "spearman": s.spearman,
            "seconds": time.perf_counter() - start,
        }
        rows += scored.timings.rows
        predicted += list(scored.predicted_us)
    total = summarize_networks(rows, np.array(predicted))
    results["all"] = {k: getattr(total, k) for k in ("rows", "mape", "median_ape", "p90_ape", "spearman")}
    for r in results.values():
        r["target_met"] = r["mape"] <= TARGET_MAPE and (r["spearman"] or 0) >= TARGET_SPEARMAN
    if args.json:
        print(json.dumps(results))
        return
    table = Table(
        title=f"timm RTX 3090, amp fp16 eager (target: MAPE <= {TARGET_MAPE}%, Spearman >= {TARGET_SPEARMAN})"
    )
    for col in ("file", "rows", "MAPE", "median APE", "p90 APE", "Spearman", "target"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for tag, r in results.items():
        table.add_row(
            tag,
            str(r["rows"]),
            f"{r['mape']:.1f}%",
            f"{r['median_ape']:.1f}%",
            f"{r['p90_ape']:.1f}%",
            f"{r['spearman']:.3f}",
            "met" if r["target_met"] else "missed",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
