"""Channel groups: the sets of channels that must keep one width, found with Torch-Pruning's dependency graph.

A group couples every layer whose output or input channels must shrink together: residual adds
(all producers of one residual stream), depthwise convs (in = out), squeeze-excitation scales,
flatten into a linear layer (vgg's classifier), an MLP's hidden width. Groups that touch what we
cannot prune safely are *locked* (kept at full width), with the reason:
attention (nn.MultiheadAttention: heads), grouped non-depthwise convs of more than one group count in
one group, bare parameters (class token, position embedding). A group that feeds or leaves grouped convs of
one group count g keeps g (Torch-Pruning's ConvPruner): its width is a multiple of g, and the same
positions are kept in every conv group (`channel_groups`). The model's
input channels and the final classifier's outputs are never in a group.

Each attention module whose heads can be planned (planner.heads.head_layout) is a *head group* of its
own: its width is the number of heads (head_dim channels each, fixed), so whole heads of one block can
be dropped while the embedding width it shares with the residual stream stays locked.
"""

from __future__ import annotations

import math
import resource
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import torch
import torch_pruning as tp
from torch import nn

from gpusim.errors import WavecutError
from planner.heads import head_layout

# Torch-Pruning follows a reshape by expanding each channel index into every element it maps to, one
# Python object each; on window-attention models (swin_t) the expansion compounds without end (22.7 GB
# when the OOM killer stopped it). Enumerating the groups may grow the process by at most this many MiB;
# past it planning is refused in one line (docs/hardening.md). The largest group of a torchvision CNN
# (vgg16's flatten: 25088 indices) is far below it.
GROUP_MEMORY_BOUND_MB = 2048
_CHECK_EVERY_S = 0.05  # CPU seconds between two looks at the process's size


class GroupsTooLarge(WavecutError):
    """Torch-Pruning's channel-group enumeration outgrew GROUP_MEMORY_BOUND_MB."""


@dataclass(frozen=True)
class ChannelGroup:
    """One set of coupled channels: its name (first producer layer), width and the layers it spans."""

    name: str
    full_width: int
    producers: tuple[str, ...]  # layers whose output channels are the group's
    consumers: tuple[str, ...]  # layers whose input channels are the group's
    locked: str = ""  # why the group cannot be pruned ("" when it can)
    tp_group: tp.dependency.Group | None = field(default=None, compare=False, repr=False)
    head_dim: int = 0  # a head group (width = heads of head_dim channels each); 0 for a channel group
    channel_groups: int = 1  # the group count of the grouped convs it feeds or leaves (1: none)

    @property
    def prunable(self) -> bool:
        """Whether the planner may change this group's width."""
        return not self.locked

    def width_multiple(self, align: int) -> int:
        """The step of this group's widths: a multiple of `align` and of its conv group count."""
        return math.lcm(align, self.channel_groups)


def classifier_layers(model: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """The conv/linear layers whose output is the model's output (the final classifier)."""
    with torch.no_grad():
        return _run_finding_classifier(model, example, lambda m, x: m(x))[1]


Result = TypeVar("Result")


def _run_finding_classifier(
    model: nn.Module, example: torch.Tensor, forward: Callable[[nn.Module, torch.Tensor], Result]
) -> tuple[Result, list[nn.Module]]:
    """forward(model, example)'s result, and the conv/linear layers whose output was the model's output: the
    layer that returned it, or else (squeezenet's conv classifier, followed by ReLU, pooling and flatten) the
    last conv/linear to run whose channels are the output's."""
    outputs: dict[nn.Module, torch.Tensor] = {}
    calls: list[tuple[nn.Module, torch.Tensor]] = []  # in run order
    returned: list[torch.Tensor] = []

    def record(m: nn.Module, _inputs: object, o: torch.Tensor) -> None:
        outputs[m] = o
        calls.append((m, o))

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    hooks.append(model.register_forward_hook(lambda _m, _i, o: returned.append(o)))
    try:
        result = forward(model, example)
    finally:
        for h in hooks:
            h.remove()
    out = returned[-1]
    same = [
        m
        for m, o in outputs.items()
        if isinstance(o, torch.Tensor) and o.shape == out.shape and o.data_ptr() == out.data_ptr()
    ]
    if same or not calls or not isinstance(out, torch.Tensor) or out.dim() < 2:
        return result, same
    last, o = calls[-1]
    return result, [last] if isinstance(o, torch.Tensor) and o.dim() >= 2 and o.shape[1] == out.shape[1] else []


def dependency_graph(model: nn.Module, example: torch.Tensor) -> tuple[tp.DependencyGraph, list[nn.Module]]:
    """Torch-Pruning's dependency graph of `model` on `example`, and the classifier layers it must not prune
    (both from one forward pass)."""

    def build(m: nn.Module, x: torch.Tensor) -> tp.DependencyGraph:
        # forward_fn: Torch-Pruning's default first tries model(*example), a failed extra pass for a tensor
        try:
            return tp.DependencyGraph().build_dependency(
                m, example_inputs=x, forward_fn=lambda mod, inp: mod(inp), verbose=False
            )
        except Exception as exc:  # noqa: BLE001 - e.g. ZeroDivisionError on shufflenet's channel shuffle
            first = (str(exc).splitlines() or [""])[0][:160]
            raise WavecutError(
                f"{type(m).__name__}: Torch-Pruning cannot trace its channel dependencies "
                f"({type(exc).__name__}: {first}); planning it is not supported"
            ) from None

    return _run_finding_classifier(model, example, build)


def find_groups(model: nn.Module, example: torch.Tensor) -> list[ChannelGroup]:
    """Every channel group of `model` (run on `example`), in model order; locked ones say why."""
    return groups_of(model, *dependency_graph(model, example))


def groups_of(model: nn.Module, graph: tp.DependencyGraph, classifier: list[nn.Module]) -> list[ChannelGroup]:
    """The channel groups of a dependency graph of `model`, the classifier layers left out, in model order."""
    names = {m: n for n, m in model.named_modules()}
    order = {n: i for i, n in enumerate(names.values())}
    groups = []
    with memory_bound(GROUP_MEMORY_BOUND_MB, type(model).__name__):
        tp_groups = list(graph.get_all_groups(ignored_layers=classifier, root_module_types=(nn.Conv2d, nn.Linear)))
    for tp_group in tp_groups:
        producers, consumers = set(), set()
        for item in tp_group:
            module = item.dep.target.module
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                (producers if graph.is_out_channel_pruning_fn(item.dep.handler) else consumers).add(names[module])
        if not producers:
            continue
        width = len(tp_group[0].idxs)
        by_order = sorted(producers, key=order.__getitem__)
        counts = _grouped_conv_counts(tp_group)
        groups.append(
            ChannelGroup(
                by_order[0],
                width,
                tuple(by_order),
                tuple(sorted(consumers, key=order.__getitem__)),
                _locked(tp_group, names, counts),
                tp_group,
                channel_groups=next(iter(counts)) if len(counts) == 1 else 1,  # several counts: locked
            )
        )
    groups += head_groups(model)
    return sorted(groups, key=lambda g: order[g.name])


def head_groups(model: nn.Module) -> list[ChannelGroup]:
    """One head group per attention module of `model` whose heads can be planned, named by its module path."""
    return [
        ChannelGroup(name, layout[1], (name,), (), head_dim=layout[2])
        for name, module in model.named_modules()
        if (layout := head_layout(module)) is not None
    ]


def _locked(tp_group: tp.dependency.Group, names: dict[nn.Module, str], counts: dict[int, nn.Conv2d]) -> str:
    """Why a group must keep its full width, or '' when it may be pruned (`counts`: _grouped_conv_counts)."""
    for item in tp_group:
        module = item.dep.target.module
        if isinstance(module, nn.MultiheadAttention):
            return f"attention {names[module]} (head widths)"
        if isinstance(module, nn.Parameter):
            return "a bare parameter (class token or position embedding)"
    if len(counts) > 1:
        return "grouped convs " + " and ".join(f"{names[m]} ({g} groups)" for g, m in sorted(counts.items()))
    return ""


def _grouped_conv_counts(tp_group: tp.dependency.Group) -> dict[int, nn.Conv2d]:
    """The group counts of the grouped, non-depthwise convs whose input or output channels are the group's,
    each with one such conv."""
    modules = {item.dep.target.module for item in tp_group}
    return {m.groups: m for m in modules if isinstance(m, nn.Conv2d) and 1 < m.groups != m.out_channels}


def _rss_mb() -> float:
    """The process's resident size now (Linux /proc), else its peak so far (getrusage), in MiB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def memory_bound(limit_mb: float, what: str) -> Iterator[None]:
    """Raise GroupsTooLarge inside the block once the process has grown by more than limit_mb.

    A CPU-time timer (SIGPROF) looks at the resident size every _CHECK_EVERY_S; its handler raises in
    the main thread between two Python bytecodes, which is where Torch-Pruning's index expansion runs.
    Off the main thread (signals cannot be set there) the block runs unguarded."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    start = _rss_mb()

    def check(_signum: int, _frame: object) -> None:
        grown = _rss_mb() - start
        if grown > limit_mb:
            signal.setitimer(signal.ITIMER_PROF, 0)
            raise GroupsTooLarge(
                f"{what}: Torch-Pruning's channel-group analysis grew past {limit_mb:.0f} MiB "
                f"(reshapes it expands element by element, as in window attention); planning it is not supported"
            )

    previous = signal.signal(signal.SIGPROF, check)
    signal.setitimer(signal.ITIMER_PROF, _CHECK_EVERY_S, _CHECK_EVERY_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
