"""Planner benchmark: plans against uniform pruning at equal budgets, and snap applied to uniform pruning.

For each model (prepared once: groups, the default importance on the synthetic calibration batch, trace at
3x224x224), fused mode:
- plans (fp16; GPUS, batch 1 and 32) at budgets 0.5/0.7/0.9 of the unpruned latency: predicted latency,
  budget met, channels and importance kept against uniform pruning (and uniform rounded to 8) at the same
  budget, planning time;
- snap (SNAP_GPUS incl. Jetson Orin, batch 1/8/32, fp16 and fp32) applied to uniform pruning at ratios
  0.3/0.5/0.7: latency, channels and importance before and after, latency against uniform rounded to 8, the
  moves a snap of the result would still take (planner.snap.wasted_tails), the multi-wave idle tail
  (planner.snap.idle_tail_us) and its channel-removable part (planner.snap.removable_idle_tail_us: what one
  group's width within snap's reach removes) before and after; and snap with `trade` (the freed latency spent
  on growing groups, up to the uniform latency): latency and importance.

    python3 -m benchmarks.planner [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

# This file is named like the package it measures: drop its folder from the path so `planner` is the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from planner.allocate import uniform_widths  # noqa: E402
from planner.plan import allocate, compare, prepare, problem_for  # noqa: E402
from planner.snap import idle_tail_us, removable_idle_tail_us, snap, wasted_tails  # noqa: E402

MODELS = ("resnet50", "mobilenet_v2", "vgg16")
GPUS = ("a100", "h100", "t4")
BATCHES = (1, 32)
SNAP_GPUS = ("a100", "t4", "orin")
SNAP_BATCHES = (1, 8, 32)
SNAP_DTYPES = ("fp16", "fp32")
BUDGETS = (0.5, 0.7, 0.9)
RATIOS = (0.3, 0.5, 0.7)


def plan_rows(problem, model: str, gpu: str, batch: int, prepare_s: float) -> list[dict]:
    """One row per budget: the plan against both uniform baselines."""
    base = problem.model.latency(problem.full)
    rows = []
    for fraction in BUDGETS:
        budget = fraction * base
        start = time.perf_counter()
        try:
            widths = allocate(problem, budget)
        except Exception as exc:  # an unreachable budget is a result, reported as such
            rows.append({"model": model, "gpu": gpu, "batch": batch, "budget": fraction, "error": str(exc)})
            continue
        plan_s = time.perf_counter() - start
        plan, uniform, rounded = compare(problem, widths, budget)
        rows.append(
            {
                "model": model,
                "gpu": gpu,
                "batch": batch,
                "budget": fraction,
                "baseline_us": base,
                "budget_us": budget,
                "plan_us": plan.latency_us,
                "met": plan.latency_us <= budget,
                "plan_channels": plan.channels,
                "plan_importance": plan.importance,
                "uniform_us": uniform.latency_us,
                "uniform_channels": uniform.channels,
                "uniform_importance": uniform.importance,
                "round8_us": rounded.latency_us,
                "round8_channels": rounded.channels,
                "round8_importance": rounded.importance,
                "allocate_s": plan_s,
                "planning_s": plan_s + prepare_s,
            }
        )
    return rows


def snap_rows(problem, model: str, gpu: str, batch: int, dtype: str) -> list[dict]:
    """One row per uniform pruning ratio: before and after snapping."""
    rows = []
    for ratio in RATIOS:
        widths = uniform_widths(problem, 1 - ratio)
        snapped, moves = snap(problem, widths)
        traded, _ = snap(problem, widths, trade=True)
        before, after, after_trade = problem.model.latencies([widths, snapped, traded])
        tails = wasted_tails(problem, widths)
        rows.append(
            {
                "model": model,
                "gpu": gpu,
                "batch": batch,
                "dtype": dtype,
                "ratio": ratio,
                "uniform_us": before,
                "snapped_us": after,
                "latency_change": after / before - 1,
                "uniform_channels": int(widths.sum()),
                "snapped_channels": int(snapped.sum()),
                "uniform_importance": problem.importance(widths) / problem.importance(problem.full),
                "snapped_importance": problem.importance(snapped) / problem.importance(problem.full),
                "traded_us": after_trade,
                "traded_change": after_trade / before - 1,
                "traded_channels": int(traded.sum()),
                "traded_importance": problem.importance(traded) / problem.importance(problem.full),
                "moves": len(moves),
                "uniform_tails": len(tails),
                "uniform_tails_free": sum(t.fix > t.width for t in tails),
                "tails_after_snap": len(wasted_tails(problem, snapped)),
                "uniform_idle_tail_us": idle_tail_us(problem, widths),
                "snapped_idle_tail_us": idle_tail_us(problem, snapped),
                "uniform_removable_tail_us": removable_idle_tail_us(problem, widths),
                "snapped_removable_tail_us": removable_idle_tail_us(problem, snapped),
                "round8_us": problem.model.latency(uniform_widths(problem, 1 - ratio, 8)),
            }
        )
    return rows


def main() -> None:
    """Run the grid, print a line per case (and one JSON object last with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="resnet50 on a100 and t4 (snap: fp16), batch 1 and 32 only"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    models, gpus = (MODELS[:1], ("a100", "t4")) if args.quick else (MODELS, GPUS)
    snap_grid = (
        [(g, b, "fp16") for g in ("a100", "t4") for b in BATCHES]
        if args.quick
        else [(g, b, d) for g in SNAP_GPUS for b in SNAP_BATCHES for d in SNAP_DTYPES]
    )
    plans, snaps = [], []
    for model in models:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prep = prepare(model)
        prepare_s = time.perf_counter() - start
        for gpu in gpus:
            for batch in BATCHES:
                plans += plan_rows(problem_for(prep, gpu, batch), model, gpu, batch, prepare_s)
        for gpu, batch, dtype in snap_grid:
            snaps += snap_rows(problem_for(prep, gpu, batch, dtype), model, gpu, batch, dtype)
    for r in plans:
        if "error" in r:
            print(f"{r['model']:13s} {r['gpu']:5s} b{r['batch']:<3d} budget {r['budget']:.1f}: {r['error']}")
            continue
        print(
            f"{r['model']:13s} {r['gpu']:5s} b{r['batch']:<3d} budget {r['budget']:.1f}: plan {r['plan_us']:8.1f} us"
            f" (budget {r['budget_us']:8.1f}) importance {r['plan_importance']:.3f} ch {r['plan_channels']:6d} | "
            f"uniform {_imp(r['uniform_importance'])} ch {r['uniform_channels'] or '-'} | "
            f"round8 {_imp(r['round8_importance'])} | {r['allocate_s']:.2f} s "
            f"(+{r['planning_s'] - r['allocate_s']:.1f} s prepare)"
        )
    for r in snaps:
        print(
            f"{r['model']:13s} {r['gpu']:5s} b{r['batch']:<3d} {r['dtype']} uniform {r['ratio']:.1f}: "
            f"{r['uniform_us']:8.1f} -> "
            f"{r['snapped_us']:8.1f} us ({r['latency_change']:+.1%}), channels {r['uniform_channels']} -> "
            f"{r['snapped_channels']}, importance {r['uniform_importance']:.3f} -> {r['snapped_importance']:.3f}, "
            f"moves worth taking {r['uniform_tails']} -> {r['tails_after_snap']}, multi-wave idle tail "
            f"{r['uniform_idle_tail_us']:.1f} -> {r['snapped_idle_tail_us']:.1f} us (channel-removable "
            f"{r['uniform_removable_tail_us']:.1f} -> {r['snapped_removable_tail_us']:.1f})"
            f" | trade {r['traded_change']:+.1%}, importance {r['traded_importance']:.3f}"
        )
    summary = _summary(plans, snaps)
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    if args.json:
        print(json.dumps({"summary": summary, "plans": plans, "snaps": snaps}, default=float))


def _imp(value: float | None) -> str:
    return "   -  " if value is None else f"{value:.3f}"


def _summary(plans: list[dict], snaps: list[dict]) -> dict:
    ok = [r for r in plans if "error" not in r]
    compared = [r for r in ok if r["uniform_importance"] is not None]
    changes = np.array([r["latency_change"] for r in snaps])
    return {
        "plans": len(plans),
        "unreachable": len(plans) - len(ok),
        "budget_met": sum(r["met"] for r in ok),
        "uniform_meets_budget": len(compared),
        "plan_ge_uniform": sum(r["plan_importance"] >= r["uniform_importance"] - 1e-12 for r in compared),
        "plan_gt_uniform": sum(r["plan_importance"] > r["uniform_importance"] + 1e-9 for r in compared),
        "mean_importance_gain": float(np.mean([r["plan_importance"] - r["uniform_importance"] for r in compared]))
        if compared
        else 0.0,
        "max_planning_s": max((r["planning_s"] for r in ok), default=0.0),
        "snap_mean_latency_change": float(changes.mean()) if len(changes) else 0.0,
        "snap_best_latency_change": float(changes.min()) if len(changes) else 0.0,
        "snap_worst_latency_change": float(changes.max()) if len(changes) else 0.0,
        "snap_importance_change_min": min(
            (r["snapped_importance"] - r["uniform_importance"] for r in snaps), default=0.0
        ),
        "tails_before_snap": sum(r["uniform_tails"] for r in snaps),
        "tails_before_snap_free_channels": sum(r["uniform_tails_free"] for r in snaps),
        "tails_after_snap": sum(r["tails_after_snap"] for r in snaps),
        "idle_tail_us_before_snap": sum(r["uniform_idle_tail_us"] for r in snaps),
        "idle_tail_us_after_snap": sum(r["snapped_idle_tail_us"] for r in snaps),
        "removable_tail_us_before_snap": sum(r["uniform_removable_tail_us"] for r in snaps),
        "removable_tail_us_after_snap": sum(r["snapped_removable_tail_us"] for r in snaps),
        "snap_cases_reaching_11pct": sum(r["latency_change"] <= -0.11 for r in snaps),
        "snap_cases": len(snaps),
        "snap_vs_round8_mean": float(np.mean([r["snapped_us"] / r["round8_us"] - 1 for r in snaps])),
        "trade_worst_latency_change": max((r["traded_change"] for r in snaps), default=0.0),
        "trade_importance_ge_uniform": sum(r["traded_importance"] >= r["uniform_importance"] - 1e-12 for r in snaps),
        "trade_mean_importance_gain": float(np.mean([r["traded_importance"] - r["uniform_importance"] for r in snaps]))
        if snaps
        else 0.0,
    }


if __name__ == "__main__":
    main()
