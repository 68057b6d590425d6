"""Measured per-group sensitivity: the calibration loss with a group cut to a grid of widths, the others full.

First-order Taylor scores add up the loss change of removing channels one at a time; removing many channels
of one layer costs more than that sum (the loss is not linear in the mask). Here the channels of a group are
ordered by Taylor score and the group is cut to each width of a grid (the lowest-ranked channels removed
exactly as Taylor removes them: zeroing the norm layers' scale and shift, or the producers' filters), and the
loss increase on the calibration batch is measured. "Importance kept" at width w is the loss increase at the
narrowest grid width minus the increase at w (linear between grid points, made non-decreasing); per-channel
scores are its increments, largest first, given to the channels in Taylor order, so the planner keeps the
same channels as Taylor but prices each group by its measured curve. Cost: one forward pass of the
calibration batch per group and grid width.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

from .slots import _root_idxs
from .taylor import NORM_HANDLERS, PRODUCER_HANDLERS

GRID = 8  # widths 0, 1/8, ..., 7/8 and all of the group


@torch.no_grad()
def measured_scores(
    model: nn.Module,
    group: tp.dependency.Group,
    taylor: torch.Tensor,
    calibration: torch.Tensor,
    labels: torch.Tensor | None = None,
    grid: int = GRID,
) -> np.ndarray:
    """Per-channel scores of `group` whose sums along the Taylor order follow the measured loss curve."""
    was_training = model.training
    model.eval()
    try:
        targets = labels if labels is not None else model(calibration).argmax(dim=1)
        full = float(F.cross_entropy(model(calibration), targets))
        width = len(taylor)
        order = torch.argsort(taylor, descending=True, stable=True)
        points = sorted({round(width * k / grid) for k in range(grid + 1)})
        losses = []
        for w in points:
            with _removed(group, set(order[w:].tolist())):
                losses.append(float(F.cross_entropy(model(calibration), targets)) - full)
    finally:
        model.train(was_training)
    curve = np.interp(np.arange(width + 1), points, losses[0] - np.array(losses))
    curve = np.maximum.accumulate(np.clip(curve, 0.0, None))
    return np.sort(np.diff(curve))[::-1][np.argsort(order.numpy(), kind="stable")]


class _removed:
    """Context: the group's channels at root positions `removed` switched off (restored on exit)."""

    def __init__(self, group: tp.dependency.Group, removed: set[int]) -> None:
        self.saved: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        root = _root_idxs(group[0])
        norms = [item for item in group if item.dep.handler in NORM_HANDLERS]
        producers = [item for item in group if item.dep.handler in PRODUCER_HANDLERS]
        for item in norms or producers:
            positions = {r: i for i, r in enumerate(root)}
            rows = [int(i) for i, r in zip(item.idxs, _root_idxs(item)) if positions.get(r) in removed]
            for name in ("weight", "bias"):
                param = getattr(item.dep.target.module, name, None)
                if isinstance(param, torch.Tensor) and rows:
                    index = torch.tensor(rows)
                    self.saved.append((param, index, param.data[index].clone()))

    def __enter__(self) -> None:
        for param, index, _ in self.saved:
            param.data[index] = 0.0

    def __exit__(self, *_exc: object) -> None:
        for param, index, values in self.saved:
            param.data[index] = values
