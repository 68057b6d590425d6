"""Measured per-group sensitivity: the calibration loss with one group cut to a grid of widths, the others full.

First-order Taylor adds up the loss change of removing channels one at a time. Cutting many channels of one
layer costs far more than that sum (the loss is not linear in the mask: a narrow early layer starves every
layer behind it), and the no-retraining path of `wavecut apply` (compensation into kept partners, BatchNorm
re-estimation) recovers part of a cut, more in some layers than in others. So here the loss is measured: the
group is cut to each width of a grid (its lowest-ranked channels removed), through the caller's `loss_at`
(planner.plan measures it with planner.apply.calibration_loss, the same path as `wavecut apply`), and
"importance kept" at width w is the loss increase at width 0 (extended linearly below the narrowest grid
width) minus the increase at w, made non-decreasing, and then its least concave majorant (linear between the
hull's grid points): the planner's per-group importance is a sum of per-channel scores, best first, so it is
concave; where the measured curve is concave it is exact. Per-channel scores are its increments, given to
the channels in `ranking` order (planner.plan.SENSITIVITY_RANKING), so the planner keeps the ranking's channels and
prices each group by its measured curve. Groups add up in the curves: the allocator
minimises the sum of the groups' measured loss increases. Interactions between groups (cutting two together
can cost more than the sum) are measured afterwards: planner.plan fits the curves on half the calibration
inputs and, on the other half, measures the allocation and a few alternatives within the budget (the uniform
allocation among them) with every group cut, keeping the lowest joint loss (planner.allocate.alternatives).
Cost: one pruned copy and two forward passes of half the calibration batch per group and grid width, and one
pruned copy per alternative (at most planner.allocate.SELECTION) per plan.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

GRID = 8  # widths 1/8, 2/8, ..., 8/8 of the group
TIE = 1e-9  # relative step that orders channels of one linear segment by their ranking


def measured_scores(loss_at: Callable[[int], float], ranking: np.ndarray, grid: int = GRID) -> np.ndarray:
    """Per-channel scores whose sums over the top-w channels of `ranking` follow the measured curve: `loss_at(w)`
    is the calibration loss increase with the group cut to its `w` highest-ranked channels (see the module doc)."""
    ranking = np.asarray(ranking, dtype=np.float64)
    width = len(ranking)
    points = sorted({max(1, round(width * k / grid)) for k in range(1, grid + 1)})
    losses = [loss_at(w) if w < width else 0.0 for w in points]
    slope = (losses[0] - losses[1]) / (points[1] - points[0]) if len(points) > 1 else 0.0
    at_zero = losses[0] + max(slope, 0.0) * points[0]
    kept = np.maximum.accumulate(np.clip(at_zero - np.array([at_zero, *losses]), 0.0, None))
    hull = _upper_hull([0, *points], kept)
    increments = np.diff(np.interp(np.arange(width + 1), [x for x, _ in hull], [y for _, y in hull]))
    increments = increments + TIE * max(float(increments.max()), 1e-12) * np.arange(width, 0, -1) / width
    ranks = np.argsort(np.argsort(-ranking, kind="stable"), kind="stable")  # 0 = highest-ranked channel
    return increments[ranks]


def _upper_hull(xs: list[int], ys: np.ndarray) -> list[tuple[float, float]]:
    """Vertices of the least concave majorant of the points (xs ascending): Andrew's monotone chain."""
    hull: list[tuple[float, float]] = []
    for point in zip(map(float, xs), map(float, ys)):
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (point[1] - y1) - (y2 - y1) * (point[0] - x1) < 0:  # hull[-1] lies above the chord
                break
            hull.pop()
        hull.append(point)
    return hull
