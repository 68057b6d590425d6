"""Latency-aware pruning with Torch-Pruning, driven by a wavecut latency lookup table (HALP-style).

    python -m wavecut.cli lut resnet18 --gpu a100 --out lut.json
    python examples/lut_torch_pruning.py lut.json --budget 0.8

The table gives, per channel group, the network latency with that group at each candidate width and
every other group at full width. The criterion: repeatedly move the group whose next narrower
candidate loses the least importance (L1 norm of the dropped filters of the group's first layer) per
microsecond saved, until the estimated latency (full latency less each group's saving, summed: an
estimate, since groups that share a layer do not save exactly additively) is within the budget.
Torch-Pruning's DependencyGraph then removes the lowest-norm channels of each group, and wavecut
predicts the pruned model to check the estimate.
"""

from __future__ import annotations

import argparse
import json

import torch
import torch_pruning as tp
import torchvision
from torch import nn

from planner.network import Network


def filter_norms(model: nn.Module, layer: str) -> torch.Tensor:
    """L1 norm of each output channel's filter of a conv or linear layer."""
    return model.get_submodule(layer).weight.detach().abs().flatten(1).sum(1)


def choose_widths(lut: dict, model: nn.Module, budget_us: float) -> tuple[dict[str, int], float]:
    """Group widths within `budget_us` by the table's savings (greedy, least importance lost per us saved),
    and the table's estimate of their latency."""
    full = lut["full_latency_us"]
    groups = {g["name"]: g for g in lut["groups"] if not g["locked"]}
    norms = {n: torch.sort(filter_norms(model, n), descending=True).values for n in groups}
    at = {n: len(g["widths"]) - 1 for n, g in groups.items()}  # index of the current width (full)

    def saving(n: str, i: int) -> float:
        return full - groups[n]["latency_us"][i]

    estimate = full
    while estimate > budget_us:
        best, best_cost = None, float("inf")
        for n, i in at.items():
            if i == 0:
                continue
            saved = saving(n, i - 1) - saving(n, i)
            lost = float(norms[n][groups[n]["widths"][i - 1] : groups[n]["widths"][i]].sum())
            cost = lost / saved if saved > 0 else float("inf")
            if cost < best_cost:
                best, best_cost = n, cost
        if best is None:
            break  # every group at its narrowest candidate
        estimate -= saving(best, at[best] - 1) - saving(best, at[best])
        at[best] -= 1
    return {n: groups[n]["widths"][i] for n, i in at.items()}, estimate


def prune(model: nn.Module, widths: dict[str, int], example: torch.Tensor) -> nn.Module:
    """Remove the lowest-norm channels of each group down to its width with Torch-Pruning."""
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    for name, width in widths.items():
        layer = model.get_submodule(name)
        drop = torch.argsort(filter_norms(model, name))[: layer.weight.shape[0] - width].tolist()
        if drop:
            fn = tp.prune_conv_out_channels if isinstance(layer, nn.Conv2d) else tp.prune_linear_out_channels
            graph.get_pruning_group(layer, fn, idxs=drop).prune()
    return model


def main() -> None:
    """Plan with the table, prune, and print the estimate against wavecut's prediction of the pruned model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lut", help="a table written by `wavecut lut ... --out lut.json`")
    parser.add_argument("--budget", type=float, default=0.8, help="fraction of the full latency")
    args = parser.parse_args()
    with open(args.lut) as f:
        lut = json.load(f)
    torch.manual_seed(0)
    model = torchvision.models.get_model(lut["model"], weights=None).eval()
    example = torch.zeros(1, *lut["input_shape"])
    widths, estimate = choose_widths(lut, model, args.budget * lut["full_latency_us"])
    pruned = prune(model, widths, example)
    predicted = Network.from_model(pruned, lut["input_shape"]).predict(
        lut["gpu"], lut["batch"], lut["dtype"], lut["mode"]
    )
    print(f"full {lut['full_latency_us']:.1f} us; budget {args.budget * lut['full_latency_us']:.1f} us")
    print(f"table estimate {estimate:.1f} us; wavecut on the pruned model {predicted.total_us:.1f} us")
    print(f"output shape {tuple(pruned(example).shape)}; {sum(p.numel() for p in pruned.parameters()):,} parameters")


if __name__ == "__main__":
    main()
