"""Planner accuracy benchmark: test accuracy of pruned models at equal *predicted* latency, over training seeds.

A VGG-style CNN (conv 64-64-pool-128-128-pool, BatchNorm, global pool, linear) is trained deterministically
(torch.manual_seed, torch.use_deterministic_algorithms(True), one thread) on scikit-learn's digits (shipped
with the package: 8x8 upsampled to 16x16, stratified 75/25 split, benchmarks.functionality.load_split), once
per training seed, on the train images but the first CALIBRATION: those are held out as the calibration
data (a validation set: a loss measured on images the model was trained on barely sees what pruning costs on
new images). The test images are used for nothing but the reported accuracy. For each GPU (t4, a100; fp16, fused, batch 256) and budget (BUDGETS of the unpruned
predicted latency) each method picks widths within it:

- plan: `wavecut plan --importance sensitivity --calibration-data` (the 256 labelled held-out images):
  channels ranked within a group by their coupled group L2 norm (Torch-Pruning's GroupMagnitudeImportance:
  filters, BatchNorm scale, the consumers' input weights; planner.plan.SENSITIVITY_RANKING), each group priced by its calibration-loss curve measured through the
  no-retraining path on half the images (planner.importance.sensitivity), then the allocation and up to 11
  alternatives within the budget (the uniform allocation rounded to 8 among them) measured jointly on the
  other half, the lowest loss kept (planner.plan.allocate);
- plan-magnitude: the same with the CLI's default importance (filter L1, each group scaled to its first-order
  Taylor sensitivity: no measured loss, so no forward passes beyond Taylor's one);
- uniform / uniform-round8: the largest uniform keep ratio (1% steps; widths floored to 8) within the budget,
  filter L1 ranking (classic uniform L1-norm filter pruning);
- uniform-group-l2: uniform's widths with the plan's ranking (not snapped): what the plan's widths add to its
  ranking;
- torch-pruning: Torch-Pruning's MetaPruner, global pruning, round_to=8, its default group L2 magnitude
  importance; the smallest pruning ratio within the budget (bisection on the predicted latency);
- each `+snap`: that method's widths snapped (planner.snap; never slower).
Channels kept are the top of the method's own ranking (group L2 for plan and uniform-group-l2, filter L1 for
plan-magnitude, uniform and uniform-round8, Torch-Pruning's group L2 for torch-pruning); a method whose widths and
ranking repeat an earlier row's (snap left the widths, or uniform = uniform-round8) reuses its evaluation. Every pruned model goes through the no-retraining path of `wavecut apply`: compensation into
kept partners (the calibration images) and BatchNorm re-estimation on the train images: `acc_no_retrain`, and
`calibration_loss` (cross-entropy on the calibration images: what the plan's measured importance minimises); then
one fine-tuning epoch (SGD, lr 0.01): `acc_finetuned`. `--exact` also solves the allocation exactly (MILP)
and reports the greedy's optimality gap in importance.

    python3 -m benchmarks.planner_accuracy [--quick] [--json]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torch_pruning as tp
from rich.console import Console
from rich.table import Table
from torch import nn

# This folder holds planner.py, named like the package it measures: drop it from the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from benchmarks.functionality import IMAGE_SIZE, Split, accuracy, build_cnn, load_split, train  # noqa: E402
from planner.allocate import uniform_at_budget  # noqa: E402
from planner.apply import prune, recalibrate_batchnorm  # noqa: E402
from planner.calibration import Calibration  # noqa: E402
from planner.plan import (  # noqa: E402
    DEFAULT_IMPORTANCE,
    PreparedModel,
    allocate,
    group_width,
    prepare_module,
    problem_for,
)
from planner.snap import snap  # noqa: E402

WIDTHS = (64, 64, 128, 128)
GPUS = ("t4", "a100")
BATCH, DTYPE, MODE = 256, "fp16", "fused"
BUDGETS = (0.4, 0.6, 0.8)  # from where the rivals collapse (A100 0.4: 8-wide layers) to where nothing is lost
SEEDS = (0, 1, 2)
SHAPE = (1, IMAGE_SIZE, IMAGE_SIZE)
CALIBRATION = 256
ACCURACIES = ("acc_no_retrain", "acc_finetuned")
RIVALS = ("uniform", "torch-pruning")  # the bar: the plan's mean accuracy above both, at equal latency
ABLATION = "uniform-group-l2"  # uniform widths with the plan's ranking: whether the widths win, not the ranking
TIE = 1e-6  # accuracies are multiples of 1 / (test images x seeds): a smaller difference is a tie
METHODS = ("plan", "plan-magnitude", "uniform", "uniform-group-l2", "uniform-round8", "torch-pruning")
SNAPPED = ("plan", "uniform", "uniform-round8", "torch-pruning")  # each also evaluated after planner.snap


def torch_pruning_widths(model: nn.Module, prep: PreparedModel, problem, budget_us: float) -> np.ndarray:
    """Group widths of Torch-Pruning's global pruning (round_to=8) at the smallest ratio within the budget."""
    names = [g.name for g in prep.groups]

    def widths_at(ratio: float) -> np.ndarray:
        pruned = copy.deepcopy(model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tp.pruner.MetaPruner(
                pruned,
                torch.zeros(1, *SHAPE),
                importance=tp.importance.GroupMagnitudeImportance(p=2),
                global_pruning=True,
                pruning_ratio=ratio,
                round_to=8,
                ignored_layers=[pruned[-1]],
            ).step()
        modules = dict(pruned.named_modules())
        return np.array([modules[n].out_channels for n in names], dtype=np.int64)

    low, high = 0.0, 0.95  # latency falls with the ratio: bisect for the smallest ratio that meets the budget
    best = widths_at(high)
    for _ in range(10):
        mid = (low + high) / 2
        widths = widths_at(mid)
        if problem.model.latency(widths) <= budget_us:
            high, best = mid, widths
        else:
            low = mid
    return best


def tp_scores(prep: PreparedModel) -> list[np.ndarray]:
    """Torch-Pruning's group L2 magnitude score of each channel (its ranking within each group)."""
    importance = tp.importance.GroupMagnitudeImportance(p=2)
    return [importance(g.tp_group).detach().double().numpy() for g in prep.groups]


def held_out(split: Split) -> tuple[Split, Calibration]:
    """The train images but the first CALIBRATION (what the model is trained and fine-tuned on), and those
    first CALIBRATION with their labels as the calibration data."""
    train_split = Split(split.x_train[CALIBRATION:], split.y_train[CALIBRATION:], split.x_test, split.y_test)
    held = Calibration(split.x_train[:CALIBRATION], split.y_train[:CALIBRATION], "digits held-out train images")
    return train_split, held


def evaluate(
    model: nn.Module,
    prep: PreparedModel,
    widths: np.ndarray,
    scores: list[np.ndarray],
    split: Split,
    calibration: Calibration,
    seed: int,
) -> tuple[float, float, float]:
    """Accuracy after pruning with compensation and BatchNorm re-estimation, its cross-entropy on the
    calibration images (what the plan's measured importance minimises), and the accuracy after one
    fine-tuning epoch."""
    planned = [group_width(g, int(w), s, 0.0) for g, w, s in zip(prep.groups, widths, scores)]
    pruned = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prune(pruned, planned, torch.zeros(1, *SHAPE), calibration.x)
    recalibrate_batchnorm(pruned, split.x_train)
    no_retrain = accuracy(pruned, split)
    with torch.no_grad():
        loss = float(F.cross_entropy(pruned(calibration.x), calibration.labels))
    train(pruned, split, epochs=1, lr=0.01, seed=seed)
    return no_retrain, loss, accuracy(pruned, split)


def run_seed(seed: int, split: Split, epochs: int, exact: bool) -> tuple[float, list[dict], list[dict]]:
    """Train one model, prune it with every method on every GPU; baseline accuracy, result rows, gap rows."""
    split, calibration = held_out(split)
    torch.manual_seed(seed)
    model = build_cnn(WIDTHS)
    train(model, split, epochs=epochs, lr=0.05, seed=seed)
    model.eval()
    baseline = accuracy(model, split)
    prep = prepare_module(model, "digits-cnn", SHAPE, "sensitivity", calibration)
    magnitude = prepare_module(model, "digits-cnn", SHAPE, DEFAULT_IMPORTANCE, calibration)
    ranking = {method: magnitude.scores for method in METHODS}  # filter L1 order within each group
    ranking["plan"] = prep.scores  # group L2 order (planner.plan.SENSITIVITY_RANKING), the measured increments
    ranking["uniform-group-l2"] = prep.scores  # uniform widths, the plan's channels: what the widths alone give
    ranking["torch-pruning"] = tp_scores(prep)
    evaluated: dict[tuple[int, tuple[int, ...]], tuple[float, float, float]] = {}
    rows, gaps = [], []
    for gpu, fraction in itertools.product(GPUS, BUDGETS):
        problem = problem_for(prep, gpu, BATCH, DTYPE, MODE)
        budget = fraction * problem.model.latency(problem.full)
        chosen = {
            "plan": allocate(problem, budget),
            "plan-magnitude": allocate(problem_for(magnitude, gpu, BATCH, DTYPE, MODE), budget),
            "uniform": uniform_at_budget(problem, budget, 1)[1],
            "uniform-round8": uniform_at_budget(problem, budget, 8)[1],
            "torch-pruning": torch_pruning_widths(model, prep, problem, budget),
        }
        chosen["uniform-group-l2"] = chosen["uniform"]  # the same widths, the plan's ranking
        if exact:
            from planner.exact import exact_widths

            optimum = exact_widths(problem, budget)
            greedy = allocate(dataclasses.replace(problem, loss=None), budget)  # before the measured choice
            gaps.append(
                {
                    "gpu": gpu,
                    "budget": fraction,
                    "seed": seed,
                    "greedy_importance": problem.importance(greedy),
                    "exact_importance": problem.importance(optimum),
                    "gap": 1 - problem.importance(greedy) / problem.importance(optimum),
                }
            )
        for method in METHODS:
            widths = chosen[method]
            variants = [(method, widths)] + (
                [(f"{method}+snap", snap(problem, widths)[0])] if method in SNAPPED else []
            )
            for name, w in variants:
                key = (id(ranking[method]), tuple(int(x) for x in w))  # same channels kept: same (deterministic) result
                if key not in evaluated:
                    evaluated[key] = evaluate(model, prep, w, ranking[method], split, calibration, seed)
                no_retrain, loss, finetuned = evaluated[key]
                rows.append(
                    {
                        "method": name,
                        "gpu": gpu,
                        "budget": fraction,
                        "budget_us": budget,
                        "seed": seed,
                        "acc_no_retrain": no_retrain,
                        "acc_finetuned": finetuned,
                        "calibration_loss": loss,
                        "predicted_latency_us": problem.model.latency(w),
                        "importance": problem.importance(w) / problem.importance(problem.full),
                        "widths": [int(x) for x in w],
                    }
                )
    return baseline, rows, gaps


def summary(rows: list[dict], baselines: list[float], seconds: float) -> Table:
    """Mean +- std over seeds per GPU, budget and method."""
    table = Table(
        title=f"digits CNN {WIDTHS}, budgets {BUDGETS} of unpruned (fp16, batch {BATCH}); baseline acc "
        f"{statistics.mean(baselines):.4f} +- {statistics.pstdev(baselines):.4f} ({seconds:.0f} s)"
    )
    for col in (
        "gpu",
        "budget",
        "method",
        "latency us",
        "importance",
        "acc no retrain",
        "calibration loss",
        "acc 1 epoch",
        "widths (seed 0)",
    ):
        table.add_column(col)

    def stat(group: list[dict], key: str, fmt: str = ".4f") -> str:
        values = [g[key] for g in group]
        return f"{statistics.mean(values):{fmt}} +- {statistics.pstdev(values):{fmt}}"

    for (gpu, budget, method), group in cells(rows).items():
        table.add_row(
            gpu,
            str(budget),
            method,
            stat(group, "predicted_latency_us", ".1f"),
            stat(group, "importance", ".3f"),
            stat(group, "acc_no_retrain"),
            stat(group, "calibration_loss"),
            stat(group, "acc_finetuned"),
            str(group[0]["widths"]),
        )
    return table


def cells(rows: list[dict]) -> dict[tuple[str, float, str], list[dict]]:
    """Rows grouped by (gpu, budget fraction, method), in order of appearance."""
    found: dict[tuple[str, float, str], list[dict]] = {}
    for r in rows:
        found.setdefault((r["gpu"], r["budget"], r["method"]), []).append(r)
    return found


def wins(rows: list[dict]) -> list[dict]:
    """Per setting (gpu, budget) and accuracy kind: does the plan's mean beat uniform's and Torch-Pruning's?
    With the margin over the better rival (plan minus its mean) and the spread over seeds of the per-seed
    difference; and whether the plan has the lowest mean calibration loss of the three (its objective)."""
    grouped = cells(rows)
    means = {key: {k: statistics.mean(r[k] for r in group) for k in ACCURACIES} for key, group in grouped.items()}
    found = []
    for gpu, budget in dict.fromkeys((g, b) for g, b, _ in means):
        loss = {m: statistics.mean(r["calibration_loss"] for r in grouped[gpu, budget, m]) for m in ("plan", *RIVALS)}
        for kind in ACCURACIES:
            plan = means[gpu, budget, "plan"][kind]
            best = max(RIVALS, key=lambda rival: means[gpu, budget, rival][kind])
            per_seed = [p[kind] - r[kind] for p, r in zip(grouped[gpu, budget, "plan"], grouped[gpu, budget, best])]
            found.append(
                {
                    "gpu": gpu,
                    "budget": budget,
                    "accuracy": kind,
                    "plan": plan,
                    **{rival: means[gpu, budget, rival][kind] for rival in RIVALS},
                    "beats_all": all(plan > means[gpu, budget, rival][kind] + TIE for rival in RIVALS),
                    "beats_ablation": plan > means[gpu, budget, ABLATION][kind] + TIE,
                    "margin": plan - means[gpu, budget, best][kind],
                    "margin_seed_std": statistics.pstdev(per_seed),
                    "lowest_calibration_loss": loss["plan"] < min(loss[rival] for rival in RIVALS),
                }
            )
    return found


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 training epochs, one seed (for tests)")
    parser.add_argument("--exact", action="store_true", help="also solve each allocation exactly (MILP): the gap")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    start = time.perf_counter()
    split = load_split()
    baselines, rows, gaps = [], [], []
    for seed in SEEDS[:1] if args.quick else SEEDS:
        baseline, seed_rows, seed_gaps = run_seed(seed, split, 4 if args.quick else 15, args.exact)
        baselines.append(baseline)
        rows += seed_rows
        gaps += seed_gaps
    Console(width=220).print(summary(rows, baselines, time.perf_counter() - start))
    verdicts = wins(rows)
    for v in verdicts:
        print(
            f"{v['gpu']} budget {v['budget']} {v['accuracy']}: plan {v['plan']:.4f}, uniform {v['uniform']:.4f}, "
            f"torch-pruning {v['torch-pruning']:.4f}: {'plan best' if v['beats_all'] else 'plan NOT best'} "
            f"(margin {v['margin']:+.4f} +- {v['margin_seed_std']:.4f} over seeds; lowest calibration loss: "
            f"{'yes' if v['lowest_calibration_loss'] else 'no'}; above {ABLATION}: "
            f"{'yes' if v['beats_ablation'] else 'no'})"
        )
    print(f"plan beats uniform and Torch-Pruning in {sum(v['beats_all'] for v in verdicts)} of {len(verdicts)}")
    print(
        f"plan beats {ABLATION} (the same ranking) in {sum(v['beats_ablation'] for v in verdicts)} of {len(verdicts)}"
    )
    for gap in gaps:
        print(
            f"exact allocation {gap['gpu']} budget {gap['budget']} seed {gap['seed']}: greedy {gap['greedy_importance']:.5f} vs "
            f"MILP {gap['exact_importance']:.5f} (gap {gap['gap']:.2%})"
        )
    if args.json:
        print(json.dumps({"baseline_acc": baselines, "results": rows, "wins": verdicts, "optimality_gap": gaps}))


if __name__ == "__main__":
    main()
