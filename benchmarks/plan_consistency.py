"""Plan consistency: for every torchvision classification model that plans, the pruned model's predicted
latency (prune with the plan, trace again, predict) must equal the latency the plan claims.

    python -m benchmarks.plan_consistency [--models resnet18,squeezenet1_0] [--gpu t4] [--batch 32]
        [--budget 0.7] [--json]

Prints a table (model, plan us, pruned us, relative difference, status) and, with --json, one JSON
object as the last line. Exit code 1 if any model that plans disagrees or crashes. Models whose
planning is refused with a WavecutError (e.g. the group-enumeration bound or an unreachable budget,
docs/hardening.md) are listed as "refused" with the reason; they are not failures. Each model runs
in its own Python process; "RSS MB" is that process's peak resident size (os.wait4), so the column
is the memory one `wavecut plan` + `wavecut apply` of the model needs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

from gpusim.errors import WavecutError


def check_model(name: str, gpu: str, batch: int, budget: str) -> dict:
    """Plan `name`, apply the plan to a fresh copy and compare the two predicted latencies."""
    from planner.apply import MATCH_TOLERANCE, apply_plan
    from planner.plan import make_plan

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            plan = make_plan(name, gpu, budget, batch)
            applied = apply_plan(plan)
        except WavecutError as exc:
            return {"model": name, "status": "refused", "reason": str(exc), "seconds": time.perf_counter() - start}
        except Exception as exc:  # noqa: BLE001 - a crash on one model is reported, the others still run
            reason = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}"
            return {"model": name, "status": "error", "reason": reason, "seconds": time.perf_counter() - start}
    diff = applied.predicted_us / plan.planned_latency_us - 1.0
    return {
        "model": name,
        "status": "equal" if abs(diff) <= MATCH_TOLERANCE else "DIFFERENT",
        "plan_us": plan.planned_latency_us,
        "pruned_us": applied.predicted_us,
        "budget_us": plan.budget_us,
        "relative_difference": diff,
        "seconds": time.perf_counter() - start,
    }


def check_in_child(name: str, gpu: str, batch: int, budget: str) -> dict:
    """check_model in a fresh Python process (models do not share memory), with that process's max RSS."""
    cmd = [sys.executable, "-m", "benchmarks.plan_consistency", "--one", name, "--gpu", gpu]
    child = subprocess.Popen([*cmd, "--batch", str(batch), "--budget", budget], stdout=subprocess.PIPE, text=True)
    out = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    try:
        row = json.loads(out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        row = {"model": name, "status": "error", "reason": f"child exited with {child.returncode}", "seconds": 0.0}
    return {**row, "max_rss_mb": usage.ru_maxrss / 1024}


def main() -> None:
    """Run the check over the chosen models and print the table (and JSON)."""
    from planner.models import torchvision_names

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated names (default: every torchvision model)")
    parser.add_argument("--gpu", default="t4")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--budget", default="0.7")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)  # the child: one model, one JSON line
    args = parser.parse_args()
    if args.one:
        print(json.dumps(check_model(args.one, args.gpu, args.batch, args.budget), allow_nan=False))
        return
    names = [m for m in args.models.split(",") if m] or torchvision_names()
    rows = []
    print(f"{'model':<24} {'plan us':>10} {'pruned us':>10} {'rel diff':>10} {'s':>6} {'RSS MB':>7}  status")
    for name in names:
        row = check_in_child(name, args.gpu, args.batch, args.budget)
        rows.append(row)
        if row["status"] in ("refused", "error"):
            print(
                f"{name:<24} {'-':>10} {'-':>10} {'-':>10} {row['seconds']:6.1f} {row['max_rss_mb']:7.0f}  "
                f"{row['status']}: {row['reason']}",
                flush=True,
            )
        else:
            print(
                f"{name:<24} {row['plan_us']:10.1f} {row['pruned_us']:10.1f} {row['relative_difference']:10.2e} "
                f"{row['seconds']:6.1f} {row['max_rss_mb']:7.0f}  {row['status']}",
                flush=True,
            )
    different = [r["model"] for r in rows if r["status"] == "DIFFERENT"]
    errors = [r["model"] for r in rows if r["status"] == "error"]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("equal", "DIFFERENT", "refused", "error")}
    max_rss_mb = max((r["max_rss_mb"] for r in rows), default=0.0)
    print(
        f"{counts['equal']} equal, {counts['DIFFERENT']} different ({', '.join(different) or 'none'}), "
        f"{counts['refused']} refused, {counts['error']} errors ({', '.join(errors) or 'none'}) of {len(rows)}; "
        f"max RSS {max_rss_mb:.0f} MB"
    )
    if args.json:
        summary = {"models": rows, "counts": counts, "different": different, "errors": errors, "max_rss_mb": max_rss_mb}
        print(json.dumps(summary, allow_nan=False))
    raise SystemExit(1 if different or errors else 0)


if __name__ == "__main__":
    main()
