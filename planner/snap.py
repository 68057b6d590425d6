"""Snap: move widths from any pruner (uniform ratio, Torch-Pruning, NAS, a plan) onto latency step edges.

For each group, with the other groups at their current widths, the group's latency staircase
(the ops that read or write its channels) places the width w on a step (down, up]: `down` is the right
edge of the step below, `up` the right edge of w's own step. The step's fill is (w - down) / (up - down).
- fill <= threshold: the width only partly uses the step's last wave; drop to `down` (saves a wave for
  the few least important channels);
- otherwise: grow to `up` (the extra channels cost no latency).
Targets are allowed (aligned) widths only, and growing is only done where it is free: an unaligned width
whose step has no free aligned right edge drops to the aligned edge below (growing to the next aligned
width only when nothing lies below the minimum width).
Widths are first clamped to the allowed range (minimum width, full width). A final pass grows every
group to the right edge of its step again, since neighbours' moves shift edges.
"""
from __future__ import annotations

import numpy as np

from gpusim.errors import WavecutError
from planner.allocate import EPS_US, Problem, grow_to_edges
from planner.groups import ChannelGroup
from planner.plan_model import Move

DEFAULT_THRESHOLD = 0.5


def widths_from_mapping(groups: list[ChannelGroup], mapping: dict[str, int]) -> tuple[np.ndarray, list[str]]:
    """Group widths from a mapping of group or layer names to widths (a layer names its output channels'
    group); unknown names and names of locked groups are returned as notes. Conflicting widths are an error."""
    by_layer = {name: i for i, g in enumerate(groups) for name in (g.name, *g.producers)}
    widths = np.array([g.full_width for g in groups], dtype=np.int64)
    seen: dict[int, tuple[str, int]] = {}
    notes = []
    for name, width in mapping.items():
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise WavecutError(f"width of {name!r} must be a positive whole number, got {width!r}")
        g = by_layer.get(name)
        if g is None or not groups[g].prunable:
            notes.append(f"{name}: {'locked: ' + groups[g].locked if g is not None else 'not a prunable layer'}; "
                         f"ignored")
            continue
        if g in seen and seen[g][1] != width:
            raise WavecutError(f"{name!r} ({width}) and {seen[g][0]!r} ({seen[g][1]}) share channel group "
                               f"{groups[g].name!r} and must have one width")
        seen[g] = (name, width)
        widths[g] = min(width, groups[g].full_width)
    return widths, notes


def snap(problem: Problem, widths: np.ndarray, threshold: float = DEFAULT_THRESHOLD,
         names: list[str] | None = None) -> tuple[np.ndarray, list[Move]]:
    """Snapped widths and the moves made (see the module doc)."""
    start = widths.copy()
    widths = np.array([min(max(int(w), a[0]), a[-1]) for w, a in zip(widths, problem.allowed)], dtype=np.int64)
    reasons: dict[int, str] = {}
    for g, allowed in enumerate(problem.allowed):
        if len(allowed) < 2:
            continue
        widths[g], reasons[g] = _snap_group(problem, g, widths, allowed, threshold)
    widths = grow_to_edges(problem, widths)
    labels = names or [str(g) for g in range(len(widths))]
    moves = []
    for g in np.flatnonzero(widths != start):
        changed = problem.model.group_tables([(int(g), [int(start[g]), int(widths[g])])], _with(widths, g, start[g]))
        d_lat = float(changed[0][1] - changed[0][0])
        moves.append(Move(group=labels[g], before=int(start[g]), after=int(widths[g]), latency_change_us=d_lat,
                          reason=reasons.get(int(g), "neighbours moved: grown to its step's right edge")))
    return widths, moves


def _with(widths: np.ndarray, g: int, value: int) -> np.ndarray:
    w = widths.copy()
    w[g] = value
    return w


def _snap_group(problem: Problem, g: int, widths: np.ndarray, allowed: list[int], threshold: float) -> tuple[int, str]:
    """The snapped width of group g (always an allowed width) and why."""
    w = int(widths[g])
    values = sorted({w, *allowed})
    table = dict(zip(values, problem.model.group_tables([(g, values)], widths)[0]))
    free = [v for v in allowed if v >= w and table[v] <= table[w] + EPS_US]
    up = max(free) if free else min(v for v in allowed if v > w)
    lower = [v for v in allowed if v < w and table[v] < table[w] - EPS_US]
    if lower:
        down = max(lower)
        fill = (w - down) / (up - down)
        if fill <= threshold or not free:
            return down, (f"drops a partly used step: {w - down} channels ({fill:.0%} of the step) "
                          f"cost {table[w] - table[down]:.1f} us")
    if up == w:
        return w, "already at a step edge"
    if free:
        return up, f"fills its step: {up - w} channels more at no extra latency"
    return up, f"aligns to {up} ({up - w} channels more for {table[up] - table[w]:.1f} us)"
