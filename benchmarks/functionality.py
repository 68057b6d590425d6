"""Functionality-oriented vs magnitude vs random filter pruning on real data, without retraining.

Trains a small VGG-style CNN on scikit-learn's handwritten digits (8x8 upsampled to 16x16),
deterministically on the CPU, then prunes every conv layer at 25/50/75% of its filters and
reports test accuracy with no retraining (removal only), with compensation (each removed filter
folded into its nearest kept filter in the next layer, no training), each also after
re-estimating BatchNorm statistics only (no weight update), and after one fine-tuning epoch.

Run from the repository root:  python3 -m benchmarks.functionality [--quick] [--json]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
import torch_pruning as tp
from rich.console import Console
from rich.table import Table
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from planner.importance import FunctionalityImportance, MagnitudeImportance, compensate

RATIOS = (0.25, 0.5, 0.75)
IMAGE_SIZE = 16
WIDTHS = (32, 32, 64, 64)


@dataclass(frozen=True)
class Split:
    """Train and test tensors."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass(frozen=True)
class Result:
    """Accuracy of one pruned model (fractions)."""

    method: str
    ratio: float
    seed: int
    train_seed: int
    acc_no_retrain: float
    acc_bn_recal: float
    acc_compensated: float
    acc_compensated_bn_recal: float
    acc_finetuned: float


def load_split() -> Split:
    """Digits upsampled to 16x16, standardised with train statistics, stratified 75/25 split."""
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(images, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    labels = torch.tensor(digits.target)
    train_idx, test_idx = train_test_split(
        torch.arange(len(labels)).numpy(), test_size=0.25, stratify=labels.numpy(), random_state=0
    )
    mean, std = images[train_idx].mean(), images[train_idx].std()
    images = (images - mean) / std
    return Split(images[train_idx], labels[train_idx], images[test_idx], labels[test_idx])


def build_cnn(widths: tuple[int, ...] = WIDTHS) -> nn.Sequential:
    """VGG-style CNN: two stages of two 3x3 conv-BN-ReLU layers (`widths`), max pooling, global pool, linear."""
    layers: list[nn.Module] = []
    channels = 1
    for i, width in enumerate(widths):
        layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        if i % 2 == 1:
            layers.append(nn.MaxPool2d(2))
        channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10)]
    return nn.Sequential(*layers)


def train(model: nn.Module, split: Split, epochs: int, lr: float, seed: int) -> None:
    """SGD with momentum and a cosine schedule, mini-batches of 64 in a seeded order."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    steps_per_epoch = -(-len(split.y_train) // 64)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(split.y_train), generator=generator).split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(split.x_train[batch]), split.y_train[batch]).backward()
            optimizer.step()
            schedule.step()


@torch.no_grad()
def accuracy(model: nn.Module, split: Split) -> float:
    """Test accuracy as a fraction."""
    model.eval()
    return (model(split.x_test).argmax(dim=1) == split.y_test).float().mean().item()


@torch.no_grad()
def recalibrate_bn(model: nn.Module, split: Split) -> nn.Module:
    """A copy whose BatchNorm running statistics are re-estimated on the train images (no weight update)."""
    model = copy.deepcopy(model)
    model.train()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    model(split.x_train)
    return model


def conv_groups(model: nn.Module) -> list[tuple[int, tp.dependency.Group]]:
    """(module index, full output-channel group) of every conv layer."""
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE))
    return [
        (i, graph.get_pruning_group(m, tp.prune_conv_out_channels, list(range(m.out_channels))))
        for i, m in enumerate(model)
        if isinstance(m, nn.Conv2d)
    ]


def prune_plan(groups: list[tuple[int, tp.dependency.Group]], score: Callable, ratio: float) -> dict[int, list[int]]:
    """Channels to remove per conv layer: the ``ratio`` lowest-scored of each group."""
    plan = {}
    for index, group in groups:
        scores = score(group)
        plan[index] = torch.argsort(scores, stable=True)[: round(len(scores) * ratio)].tolist()
    return plan


def apply_plan(model: nn.Module, plan: dict[int, list[int]], calibration: torch.Tensor | None = None) -> nn.Module:
    """A pruned copy of ``model``, layer by layer; with ``calibration``, each layer is compensated first."""
    pruned = copy.deepcopy(model)
    graph = tp.DependencyGraph().build_dependency(pruned, example_inputs=torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE))
    for index, idxs in plan.items():
        conv = pruned[index]
        if calibration is not None:
            full = graph.get_pruning_group(conv, tp.prune_conv_out_channels, list(range(conv.out_channels)))
            compensate(pruned, full, sorted(set(range(conv.out_channels)) - set(idxs)), calibration)
        graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs).prune()
    return pruned


def random_scorer(seed: int) -> Callable:
    """Uniform random scores from a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    return lambda group: torch.rand(len(group[0].idxs), generator=generator)


def run(quick: bool, seeds: int, threads: int, train_seed: int = 0) -> tuple[float, list[Result]]:
    """Train the baseline, prune by every method and ratio, return baseline accuracy and results."""
    torch.manual_seed(train_seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    split = load_split()
    model = build_cnn()
    train(model, split, epochs=4 if quick else 20, lr=0.05, seed=train_seed)
    baseline = accuracy(model, split)
    groups = conv_groups(model)
    calibration = split.x_train[:256]
    signatures = {
        "response": {"signature": "response", "calibration": calibration},
        "response-output": {"signature": "response", "calibration": calibration, "tap": "output"},
        "actmax": {"signature": "actmax", "input_shape": (1, IMAGE_SIZE, IMAGE_SIZE)},
    }
    scorers: list[tuple[str, int, Callable[[float], Callable]]] = [("magnitude", 0, lambda r: MagnitudeImportance())]
    for name, options in signatures.items():
        criterion = FunctionalityImportance(model, progress=not quick, **options)

        def functionality(ratio: float, criterion: FunctionalityImportance = criterion) -> Callable:
            criterion.keep_ratio = 1.0 - ratio
            return criterion

        scorers.append((f"functionality-{name}", 0, functionality))
    scorers += [("random", seed, lambda r, seed=seed: random_scorer(seed)) for seed in range(seeds)]
    results = []
    for ratio in RATIOS:
        for method, seed, make_scorer in scorers:
            plan = prune_plan(groups, make_scorer(ratio), ratio)
            pruned, compensated = apply_plan(model, plan), apply_plan(model, plan, calibration)
            accuracies = [
                accuracy(m, split)
                for m in (pruned, recalibrate_bn(pruned, split), compensated, recalibrate_bn(compensated, split))
            ]
            train(pruned, split, epochs=1, lr=0.01, seed=seed)
            results.append(Result(method, ratio, seed, train_seed, *accuracies, accuracy(pruned, split)))
    return baseline, results


def summary_table(baseline: float, results: list[Result], seconds: float) -> Table:
    """Rich table: one row per method and ratio (random: mean, std and range over seeds)."""
    table = Table(title=f"digits 16x16 VGG-style CNN, baseline test acc {baseline:.4f} ({seconds:.0f} s)")
    for column in (
        "ratio",
        "method",
        "no retrain",
        "BN recal",
        "compensated",
        "compensated + BN recal",
        "after 1 epoch",
    ):
        table.add_column(column)
    rows: dict[tuple[float, str], list[Result]] = {}
    for result in results:
        rows.setdefault((result.ratio, result.method), []).append(result)

    def describe(values: list[float]) -> str:
        if len(values) == 1:
            return f"{values[0]:.4f}"
        return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f} [{min(values):.4f}, {max(values):.4f}]"

    for (ratio, method), group in rows.items():
        table.add_row(
            f"{ratio:.2f}",
            method if len(group) == 1 else f"{method} ×{len(group)}",
            *(
                describe([getattr(r, field) for r in group])
                for field in (
                    "acc_no_retrain",
                    "acc_bn_recal",
                    "acc_compensated",
                    "acc_compensated_bn_recal",
                    "acc_finetuned",
                )
            ),
        )
    return table


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 training epochs, 2 random seeds (for tests)")
    parser.add_argument("--seeds", type=int, default=None, help="random-pruning seeds (default 5, quick 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (fixed for determinism)")
    parser.add_argument("--train-seeds", type=int, default=1, help="training seeds (rows: mean ± std over them)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    seeds = args.seeds if args.seeds is not None else (2 if args.quick else 5)
    start = time.perf_counter()
    baselines, results = [], []
    for train_seed in range(args.train_seeds):
        baseline, seed_results = run(args.quick, seeds, args.threads, train_seed)
        baselines.append(baseline)
        results += seed_results
    baseline = statistics.mean(baselines)
    Console(width=200).print(summary_table(baseline, results, time.perf_counter() - start))
    if args.json:
        print(json.dumps({"baseline_acc": baseline, "baselines": baselines, "results": [asdict(r) for r in results]}))


if __name__ == "__main__":
    main()
