"""Where a Torch-Pruning group's channels live: the layers producing them and the layers reading them.

A group (``group[0]`` is the root; every item has ``.dep.target.module``, ``.dep.handler``,
``.idxs`` and ``.root_idxs``) prunes output channels of its producers (conv/linear layers whose
outputs are coupled) and input channels of its consumers (the next conv/linear layers). A
:class:`Slot` records, for one such layer, its channel indices and the root positions they map to;
a consumer after a flatten reads several input features per root channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch_pruning as tp
from torch import nn
from torch_pruning.pruner import function

from .signatures import PRUNABLE_TYPES

_OUT_CHANNEL_HANDLERS = (
    function.prune_conv_out_channels,
    function.prune_depthwise_conv_out_channels,
    function.prune_linear_out_channels,
)
_IN_CHANNEL_HANDLERS = (function.prune_conv_in_channels, function.prune_linear_in_channels)


@dataclass(frozen=True)
class Slot:
    """Channels ``idxs`` of ``module`` (outputs of a producer, inputs of a consumer) at root ``positions``."""

    module: nn.Module
    idxs: list[int]
    positions: list[int]

    def columns(self) -> dict[int, list[int]]:
        """The module's channel indices of each root position, ascending (several after a flatten)."""
        columns: dict[int, list[int]] = {}
        for position, idx in sorted(zip(self.positions, self.idxs)):
            columns.setdefault(position, []).append(idx)
        return columns


def _root_idxs(item: object) -> list[int]:
    """Root indices of a group item (the item's own indices when the graph did not set them)."""
    root = getattr(item, "root_idxs", None)
    return list(root) if root is not None else list(item.idxs)


def _slots(group: tp.dependency.Group, handlers: tuple) -> tuple[int, list[Slot]]:
    """Root width and the conv/linear layers the group prunes with one of ``handlers``."""
    root_positions = {root: pos for pos, root in enumerate(_root_idxs(group[0]))}
    slots = []
    for item in group:
        module = item.dep.target.module
        if item.dep.handler in handlers and isinstance(module, PRUNABLE_TYPES):
            positions = [root_positions[r] for r in _root_idxs(item)]
            slots.append(Slot(module, [int(i) for i in item.idxs], positions))
    return len(root_positions), slots


def producer_slots(group: tp.dependency.Group) -> tuple[int, list[Slot]]:
    """Root width and the conv/linear layers whose output channels the group prunes."""
    return _slots(group, _OUT_CHANNEL_HANDLERS)


def consumer_slots(group: tp.dependency.Group) -> tuple[int, list[Slot]]:
    """Root width and the non-grouped conv/linear layers whose input channels the group prunes."""
    width, slots = _slots(group, _IN_CHANNEL_HANDLERS)
    return width, [s for s in slots if getattr(s.module, "groups", 1) == 1]
