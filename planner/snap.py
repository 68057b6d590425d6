"""Snap: move widths from any pruner (uniform ratio, Torch-Pruning, NAS, a plan) onto latency step and wave edges.

For each group, with the other groups at their current widths, the candidates are the widths within
REACH (a fraction, 25%) of the group's current width, at least one alignment step, that are
- step edges: the right edge of a latency step (priced lower than every wider candidate), or
- wave edges: the widest width at which one of the group's kernels (the ops that read or write its channels)
  runs one wave fewer than one alignment step wider.
A narrower candidate is a move priced by its importance cost: it saves `saved` microseconds and loses `lost`
importance (the group's dropped channels' scores). With the input's average importance per microsecond
`avg` = importance / latency of the input widths, a move is worth taking when `lost <= threshold * avg * saved`
(default threshold 1, break-even: then `(importance - lost) / (latency - saved) >= importance / latency`, so
no move lowers the importance the input keeps per microsecond; a partly used last wave or a step costs
latency that buys less than the average); of those, the group takes the one with the
largest `threshold * avg * saved - lost`. Every move lowers the total latency (the group's ops are priced with
the others at their current widths), and each pass ends by growing every group to the right edge of its step
(more channels, no latency), so the result never has a higher latency than the input. Passes repeat (at most
MAX_PASSES) until nothing moves, since a group's move shifts its neighbours' steps and waves.
Widths are first clamped to the group's full width and aligned (an unaligned width grows to the next aligned
width where that is free, else drops to the one below; one below the minimum width is raised to it, the only
move that can cost latency).
`wasted_tails` lists the moves a snap of the given widths would take (reach measured from them). With `trade`, the latency freed is then
spent on growing groups up to the input's latency (`fill`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gpusim.eager import predict_mixed
from gpusim.errors import WavecutError
from gpusim.predict import KernelLaunch, Prediction, launch_overhead_us
from planner.allocate import EPS_US, Problem, fill, grow_to_edges
from planner.candidates import alignment, right_edges
from planner.defaults import DEFAULT_SNAP_THRESHOLD
from planner.groups import ChannelGroup
from planner.plan_model import Move

DEFAULT_THRESHOLD = DEFAULT_SNAP_THRESHOLD
MAX_PASSES = 4
REACH = 0.25  # candidates lie within this fraction of a group's current width


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
    if threshold < 0:
        raise WavecutError(f"--threshold: must be at least 0, got {threshold}")
    start = np.minimum(widths, problem.full).astype(np.int64)
    widths = start.copy()
    avg = _average_importance(problem, start)
    reasons: dict[int, str] = {}
    for g in range(len(widths)):
        aligned = _aligned(problem, g, widths)
        if aligned is not None:
            widths[g], reasons[g] = aligned
    for _ in range(MAX_PASSES):  # a group's move shifts its neighbours' steps and waves: repeat until none moves
        before = widths.copy()
        for g in range(len(widths)):
            move = _best_drop(problem, g, widths, threshold * avg, int(start[g]))
            if move is not None:
                widths[g], reasons[g] = move
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
                reason=reasons.get(int(g), "grown to its step's right edge (free channels)"),
            )
        )
    return widths, moves


@dataclass(frozen=True)
class Tail:
    """A group left with a move worth taking: free channels above it, or a narrower step or wave edge whose
    latency saving pays for its importance cost."""

    group: int
    width: int
    fix: int  # the width that fixes it
    reason: str


def wasted_tails(problem: Problem, widths: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> list[Tail]:
    """The groups a snap would still move, each with the others at `widths` (free growth to the step's right
    edge, or a drop to a step or wave edge within REACH worth its importance, priced as `snap` prices it,
    with the average importance per microsecond of `widths`)."""
    avg = _average_importance(problem, widths)
    tails = []
    for g in range(len(widths)):
        w = int(widths[g])
        grown = int(grow_to_edges(problem, widths, [g])[g])
        if grown != w:
            tails.append(Tail(g, w, int(grown), f"{grown - w} channels more cost no latency"))
            continue
        move = _best_drop(problem, g, widths, threshold * avg)
        if move is not None:
            tails.append(Tail(g, w, *move))
    return tails


def idle_tail_us(problem: Problem, widths: np.ndarray) -> float:
    """Time the network's multi-wave kernels spend in the idle part of partly filled last waves at `widths`: per
    launch, its busy time (less the launch overhead) over its waves, times the idle fraction of the last wave
    (planner.network.Layer.tail_waste_us, for launches of two waves or more)."""
    overhead = launch_overhead_us(problem.model.spec)
    return float(sum(_idle(k, overhead) for k in problem.model.predict(widths).launches))


def removable_idle_tail_us(problem: Problem, widths: np.ndarray) -> float:
    """The channel-removable part of `idle_tail_us(widths)`: per op, its idle tail time less the least idle tail
    that one of the groups it reads or writes gives it at an allowed width within `reach` of its current width
    (narrower or wider, the other groups at `widths`), summed over ops. The rest of the idle tail is out of
    reach of any width (batch x spatial grid dimensions, or a wave count no nearby channel count changes)."""
    now, least, _ = _op_idle_and_least(problem, widths)
    return float(np.clip(now - least, 0.0, None).sum())


@dataclass(frozen=True)
class IdleTail:
    """One op's multi-wave idle tail at some widths, and how much of it a width within snap's reach removes."""

    op: str
    grid: int
    waves: int
    tail_fill: float
    idle_us: float
    removable_us: float


@dataclass(frozen=True)
class TailReport:
    """The multi-wave idle tail at some widths: its channel-removable part (`removable_idle_tail_us`) and the
    ops with the most of the rest."""

    removable_us: float
    largest_left: list[IdleTail]


def tail_report(problem: Problem, widths: np.ndarray, most: int = 3) -> TailReport:
    """One reach scan at `widths`: the channel-removable idle tail, and the `most` ops with the largest idle tail
    that no width within reach removes (the least one reaches), largest first, with their main launch's grid,
    waves and last-wave fill."""
    now, least, prediction = _op_idle_and_least(problem, widths)
    removable = np.clip(now - least, 0.0, None)
    main = prediction.main_launches()
    order = [int(i) for i in np.argsort(-least, kind="stable") if least[i] > EPS_US]
    return TailReport(
        float(removable.sum()),
        [
            IdleTail(
                main[i].op_name, main[i].grid, main[i].waves, main[i].tail_fill, float(now[i]), float(removable[i])
            )
            for i in order[:most]
        ],
    )


def _op_idle_and_least(problem: Problem, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray, Prediction]:
    """Per op: its idle tail at `widths`, and the least idle tail one group's width within reach gives it (at
    most its own); and the prediction at `widths`."""
    overhead = launch_overhead_us(problem.model.spec)
    prediction = problem.model.predict(widths)
    now = _op_idle(prediction.launches, len(problem.model.base_ops), overhead)
    least = now.copy()
    for g, allowed in enumerate(problem.allowed):
        w, ops = int(widths[g]), problem.model.ops_of[g]
        values = [v for v in allowed if v != w and abs(v - w) <= reach(problem, w)]
        if len(allowed) < 2 or not values or not ops:
            continue
        trial = []
        for v in values:
            trial.extend(problem.model.op_at(i, _with(widths, g, v)) for i in ops)
        dtypes = [problem.model.op_dtypes[i] for i in ops] * len(values)
        idle = _op_idle(predict_mixed(trial, dtypes, problem.model.spec).launches, len(trial), overhead)
        least[ops] = np.minimum(least[ops], idle.reshape(len(values), len(ops)).min(axis=0))
    return now, least, prediction


def _op_idle(launches: list[KernelLaunch], count: int, overhead: float) -> np.ndarray:
    """Idle tail time (`_idle`) summed per op index, for `count` ops."""
    idle = np.zeros(count)
    for k in launches:
        idle[k.op_index] += _idle(k, overhead)
    return idle


def _idle(k: KernelLaunch, overhead: float) -> float:
    """A multi-wave launch's idle tail time: its busy time per wave times the idle part of its last wave (0 for
    one wave: there the idle SMs are free room for more channels, not a wave that fewer channels remove; 0 for
    a streaming kernel, whose last wave costs in proportion to its CTAs: KernelLaunch.idle_tail_us)."""
    return k.idle_tail_us(overhead) if k.waves > 1 else 0.0


def reach(problem: Problem, width: int) -> int:
    """How far (channels) snap looks from `width`: REACH of it, at least one alignment step."""
    return max(alignment(problem.model.dtype), math.ceil(REACH * width))


def _aligned(problem: Problem, g: int, widths: np.ndarray) -> tuple[int, str] | None:
    """For a width that is not allowed (unaligned, or below the minimum): the next allowed width where that is
    free, else the allowed width below, else (below the minimum) the minimum; and why. None when allowed."""
    w, allowed = int(widths[g]), problem.allowed[g]
    if w in allowed:
        return None
    up = min(v for v in allowed if v > w)
    below = [v for v in allowed if v < w]
    t_w, t_up = problem.model.group_tables([(g, [w, up])], widths)[0]
    if t_up <= t_w + EPS_US:
        return up, f"aligns to {up}: {up - w} channels more at no extra latency"
    if below:
        return below[-1], f"aligns to {below[-1]}: growing to {up} would cost {t_up - t_w:.1f} us"
    return up, f"raised to the minimum width {up}"


def _average_importance(problem: Problem, widths: np.ndarray) -> float:
    """Importance kept per microsecond of latency at `widths`."""
    return problem.importance(widths) / max(problem.model.latency(widths), EPS_US)


def _with(widths: np.ndarray, g: int, value: int) -> np.ndarray:
    w = widths.copy()
    w[g] = value
    return w


def _best_drop(
    problem: Problem, g: int, widths: np.ndarray, price: float, origin: int | None = None
) -> tuple[int, str] | None:
    """Group g's best narrower step or wave edge within reach of `origin` (default: its width), worth `price` importance per microsecond saved
    (lost importance <= price x saved latency, largest margin); its width and why; None when there is none."""
    allowed = problem.allowed[g]
    w = int(widths[g])
    if len(allowed) < 2:
        return None
    low = (w if origin is None else origin) - reach(problem, w if origin is None else origin)
    values = sorted({v for v in allowed if low <= v < w} | {w})
    if len(values) < 2:
        return None
    times = problem.model.group_tables([(g, values)], widths)[0]
    launches = problem.model.group_launches(g, values, widths)
    steps = set(right_edges(values, times))
    overhead = launch_overhead_us(problem.model.spec)
    tails = [sum(_idle(k, overhead) for k in kernels) for kernels in launches]
    best: tuple[float, int, str] | None = None
    for j, v in enumerate(values[:-1]):
        saved = float(times[-1] - times[j])
        lost = float(problem.cum[g][w] - problem.cum[g][v])
        if saved <= EPS_US or lost > price * saved or tails[j] > tails[-1] + EPS_US:
            continue
        fewer = [(a, b) for a, b in zip(launches[j], launches[j + 1]) if a.waves < b.waves]
        if not fewer and v not in steps:
            continue
        margin = price * saved - lost
        if best is None or margin > best[0]:
            kind = f"wave edge ({fewer[0][0].op_name}: {fewer[0][0].waves} waves)" if fewer else "step edge"
            best = (margin, v, f"drops to a {kind}: {w - v} channels fewer save {saved:.1f} us")
    return None if best is None else (best[1], best[2])
