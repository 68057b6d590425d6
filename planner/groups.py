"""Channel groups: the sets of channels that must keep one width, found with Torch-Pruning's dependency graph.

A group couples every layer whose output or input channels must shrink together: residual adds
(all producers of one residual stream), depthwise convs (in = out), squeeze-excitation scales,
flatten into a linear layer (vgg's classifier), an MLP's hidden width. Groups that touch what we
cannot prune safely are *locked* (kept at full width), with the reason:
attention (nn.MultiheadAttention: heads), grouped non-depthwise convs (group counts), bare
parameters (class token, position embedding). The model's
input channels and the final classifier's outputs are never in a group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import torch
import torch_pruning as tp
from torch import nn


@dataclass(frozen=True)
class ChannelGroup:
    """One set of coupled channels: its name (first producer layer), width and the layers it spans."""

    name: str
    full_width: int
    producers: tuple[str, ...]  # layers whose output channels are the group's
    consumers: tuple[str, ...]  # layers whose input channels are the group's
    locked: str = ""  # why the group cannot be pruned ("" when it can)
    tp_group: tp.dependency.Group | None = field(default=None, compare=False, repr=False)

    @property
    def prunable(self) -> bool:
        """Whether the planner may change this group's width."""
        return not self.locked


def classifier_layers(model: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """The conv/linear layers whose output is the model's output (the final classifier)."""
    with torch.no_grad():
        return _run_finding_classifier(model, example, lambda m, x: m(x))[1]


Result = TypeVar("Result")


def _run_finding_classifier(
    model: nn.Module, example: torch.Tensor, forward: Callable[[nn.Module, torch.Tensor], Result]
) -> tuple[Result, list[nn.Module]]:
    """forward(model, example)'s result, and the conv/linear layers whose output was the model's output."""
    outputs: dict[nn.Module, torch.Tensor] = {}
    returned: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda m, _i, o: outputs.__setitem__(m, o))
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    hooks.append(model.register_forward_hook(lambda _m, _i, o: returned.append(o)))
    try:
        result = forward(model, example)
    finally:
        for h in hooks:
            h.remove()
    out = returned[-1]
    return result, [
        m
        for m, o in outputs.items()
        if isinstance(o, torch.Tensor) and o.shape == out.shape and o.data_ptr() == out.data_ptr()
    ]


def dependency_graph(model: nn.Module, example: torch.Tensor) -> tuple[tp.DependencyGraph, list[nn.Module]]:
    """Torch-Pruning's dependency graph of `model` on `example`, and the classifier layers it must not prune
    (both from one forward pass)."""

    def build(m: nn.Module, x: torch.Tensor) -> tp.DependencyGraph:
        # forward_fn: Torch-Pruning's default first tries model(*example), a failed extra pass for a tensor
        return tp.DependencyGraph().build_dependency(
            m, example_inputs=x, forward_fn=lambda mod, inp: mod(inp), verbose=False
        )

    return _run_finding_classifier(model, example, build)


def find_groups(model: nn.Module, example: torch.Tensor) -> list[ChannelGroup]:
    """Every channel group of `model` (run on `example`), in model order; locked ones say why."""
    return groups_of(model, *dependency_graph(model, example))


def groups_of(model: nn.Module, graph: tp.DependencyGraph, classifier: list[nn.Module]) -> list[ChannelGroup]:
    """The channel groups of a dependency graph of `model`, the classifier layers left out, in model order."""
    names = {m: n for n, m in model.named_modules()}
    order = {n: i for i, n in enumerate(names.values())}
    groups = []
    for tp_group in graph.get_all_groups(ignored_layers=classifier, root_module_types=(nn.Conv2d, nn.Linear)):
        producers, consumers = set(), set()
        for item in tp_group:
            module = item.dep.target.module
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                (producers if graph.is_out_channel_pruning_fn(item.dep.handler) else consumers).add(names[module])
        if not producers:
            continue
        width = len(tp_group[0].idxs)
        by_order = sorted(producers, key=order.__getitem__)
        groups.append(
            ChannelGroup(
                by_order[0],
                width,
                tuple(by_order),
                tuple(sorted(consumers, key=order.__getitem__)),
                _locked(tp_group, names),
                tp_group,
            )
        )
    return sorted(groups, key=lambda g: order[g.name])


def _locked(tp_group: tp.dependency.Group, names: dict[nn.Module, str]) -> str:
    """Why a group must keep its full width, or '' when it may be pruned."""
    for item in tp_group:
        module = item.dep.target.module
        if isinstance(module, nn.MultiheadAttention):
            return f"attention {names[module]} (head widths)"
        if isinstance(module, nn.Parameter):
            return "a bare parameter (class token or position embedding)"
        if isinstance(module, nn.Conv2d) and 1 < module.groups != module.out_channels:
            return f"grouped conv {names[module]} ({module.groups} groups)"
    return ""
