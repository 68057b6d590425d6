"""Snap: move widths from any pruner (uniform ratio, Torch-Pruning, NAS, a plan) onto latency step edges.

For each group, with the other groups at their current widths, the group's latency staircase
(the ops that read or write its channels) places the width w on a step (down, up]: `down` is the right
edge of the step below, `up` the right edge of w's own step. The step's fill is (w - down) / (up - down).
- step rule: fill <= threshold: the width only partly uses the step; drop to `down` (saves the step for
  the few least important channels); otherwise grow to `up` (the extra channels cost no latency).
  Targets are allowed (aligned) widths only, and growing is only done where it is free: an unaligned width
  whose step has no free aligned right edge drops to the aligned edge below (growing to the next aligned
  width only when nothing lies below the minimum width).
- wave rule, at the step rule's target: where one of the group's kernels ends in a last wave at most
  `threshold` full and a width at most two alignment steps narrower removes that wave, leaving the
  kernel's new last wave more than `threshold` full, the group drops to the widest such width. (Steps are
  often one alignment step wide, since a consumer's K dimension grows with every channel, so the step rule
  alone cannot see a wave that a few channels fewer would save.)
Widths are first clamped to the allowed range (minimum width, full width). After each pass every group
grows to the right edge of its step again; passes repeat (at most MAX_PASSES) until nothing moves, since
neighbours' moves shift steps and waves. `wasted_tails` lists what a snap should leave: nothing.
With `trade`, the latency freed is then spent on growing groups up to the input's latency (`fill`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpusim.errors import WavecutError
from planner.allocate import EPS_US, Problem, fill, grow_to_edges
from planner.candidates import alignment
from planner.groups import ChannelGroup
from planner.plan_model import Move

DEFAULT_THRESHOLD = 0.5
MAX_PASSES = 4
REACH_STEPS = 2  # the wave rule and `wasted_tails` look this many alignment steps away


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
            notes.append(
                f"{name}: {'locked: ' + groups[g].locked if g is not None else 'not a prunable layer'}; ignored"
            )
            continue
        if g in seen and seen[g][1] != width:
            raise WavecutError(
                f"{name!r} ({width}) and {seen[g][0]!r} ({seen[g][1]}) share channel group "
                f"{groups[g].name!r} and must have one width"
            )
        seen[g] = (name, width)
        widths[g] = min(width, groups[g].full_width)
    return widths, notes


def snap(
    problem: Problem,
    widths: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    names: list[str] | None = None,
    trade: bool = False,
) -> tuple[np.ndarray, list[Move]]:
    """Snapped widths and the moves made (see the module doc). With `trade`, the latency the snap frees is
    spent again on growing groups (most importance per microsecond), up to the input's latency."""
    start = widths.copy()
    widths = np.array([min(max(int(w), a[0]), a[-1]) for w, a in zip(widths, problem.allowed)], dtype=np.int64)
    reasons: dict[int, str] = {}
    for _ in range(MAX_PASSES):  # a group's move shifts its neighbours' steps and waves: repeat until none moves
        before = widths.copy()
        for g, allowed in enumerate(problem.allowed):
            if len(allowed) > 1:
                width, reason = _snap_group(problem, g, widths, allowed, threshold)
                if width != widths[g]:
                    widths[g], reasons[g] = width, reason
        widths = grow_to_edges(problem, widths)
        if np.array_equal(widths, before):
            break
    if trade:
        snapped = widths
        widths = fill(problem, snapped, problem.model.latency(start))
        reasons.update(
            {
                int(g): f"grown with latency freed elsewhere ({int(snapped[g])} after snapping)"
                for g in np.flatnonzero(widths != snapped)
            }
        )
    labels = names or [str(g) for g in range(len(widths))]
    moves = []
    for g in np.flatnonzero(widths != start):
        changed = problem.model.group_tables([(int(g), [int(start[g]), int(widths[g])])], _with(widths, g, start[g]))
        d_lat = float(changed[0][1] - changed[0][0])
        moves.append(
            Move(
                group=labels[g],
                before=int(start[g]),
                after=int(widths[g]),
                latency_change_us=d_lat,
                reason=reasons.get(int(g), "neighbours moved: grown to its step's right edge"),
            )
        )
    return widths, moves


@dataclass(frozen=True)
class Tail:
    """A group left with waste that moving at most `reach` channels fixes: free channels above it, or a kernel
    whose partly used last wave (tail fill <= threshold) a narrower width removes."""

    group: int
    width: int
    fix: int  # the width that fixes it
    reason: str


def wasted_tails(
    problem: Problem, widths: np.ndarray, threshold: float = DEFAULT_THRESHOLD, reach: int | None = None
) -> list[Tail]:
    """The groups whose waste moving at most `reach` channels (default: REACH_STEPS alignment steps) would fix,
    each with the others at `widths`. Empty after `snap` is the snap target."""
    reach = _reach(problem) if reach is None else reach
    tails = []
    for g, allowed in enumerate(problem.allowed):
        w = int(widths[g])
        above = [v for v in allowed if w < v <= w + reach]
        if above:
            table = problem.model.group_tables([(g, [w, *above])], widths)[0]
            free = [v for v, t in zip(above, table[1:]) if t <= table[0] + EPS_US]
            if free:
                tails.append(Tail(g, w, max(free), f"{max(free) - w} channels more cost no latency"))
                continue
        drop = _tail_drop(problem, g, widths, allowed, w, threshold, reach)
        if drop is not None:
            tails.append(Tail(g, w, *drop))
    return tails


def _reach(problem: Problem) -> int:
    return REACH_STEPS * alignment(problem.model.dtype)


def _with(widths: np.ndarray, g: int, value: int) -> np.ndarray:
    w = widths.copy()
    w[g] = value
    return w


def _snap_group(problem: Problem, g: int, widths: np.ndarray, allowed: list[int], threshold: float) -> tuple[int, str]:
    """The snapped width of group g (always an allowed width) and why: the step rule, then the wave rule."""
    target, reason = _step_target(problem, g, widths, allowed, threshold)
    return _tail_drop(problem, g, widths, allowed, target, threshold, _reach(problem)) or (target, reason)


def _step_target(problem: Problem, g: int, widths: np.ndarray, allowed: list[int], threshold: float) -> tuple[int, str]:
    """Group g's width moved to an edge of its latency step: down when the step is at most `threshold` used
    (or growing would cost latency), else up; and why."""
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
            return down, (
                f"drops a partly used step: {w - down} channels ({fill:.0%} of the step) "
                f"cost {table[w] - table[down]:.1f} us"
            )
    if up == w:
        return w, "already at a step edge"
    if free:
        return up, f"fills its step: {up - w} channels more at no extra latency"
    return up, f"aligns to {up} ({up - w} channels more for {table[up] - table[w]:.1f} us)"


def _tail_drop(
    problem: Problem, g: int, widths: np.ndarray, allowed: list[int], width: int, threshold: float, reach: int
) -> tuple[int, str] | None:
    """The widest width at most `reach` channels below `width` that removes the last wave of one of group g's
    kernels whose last wave is at most `threshold` full at `width`, leaving that kernel's new last wave more
    than `threshold` full (so the waste is gone, not moved one wave down), and lowering the group's latency;
    and why."""
    below = [v for v in allowed if width - reach <= v < width]
    if not below:
        return None
    values = [*below, width]
    times = problem.model.group_tables([(g, values)], widths)[0]
    launches = problem.model.group_launches(g, values, widths)
    for j in reversed(range(len(below))):
        for narrow, here in zip(launches[j], launches[-1]):
            if (
                here.waves >= 2
                and here.tail_fill <= threshold
                and narrow.waves < here.waves
                and narrow.tail_fill > threshold
                and times[j] < times[-1] - EPS_US
            ):
                return below[j], (
                    f"drops a partly used wave: {width - below[j]} channels fewer remove the last "
                    f"wave ({here.tail_fill:.0%} full) of {here.op_name}, "
                    f"{times[-1] - times[j]:.1f} us"
                )
    return None
