"""Allocation: the group widths that keep the most importance within a latency budget.

1. Latency-saliency greedy: from full width, repeatedly take the move (a group to one of its lower step
   edges) that loses the least importance per microsecond saved, re-pricing the groups that share ops
   with the moved one, until the budget is met. Running latency is exact: only the moved group's ops change.
2. Fill: while slack remains, grow the group that gains the most importance per microsecond (free
   growth first) among its step edges. `fill` does this alone from any widths (snap's trade).
3. Edges: every group grows to the right edge of its current step (more channels, same latency).
The best of this and the uniform baselines (also grown to their step edges) that meet the budget is kept,
so a plan never keeps less importance than uniform pruning at the same budget.

With a measured importance the problem also carries `loss` (the joint calibration loss of a width vector,
planner.plan): importance adds up over groups, the measured loss need not (cutting two groups together can
cost more than the sum of cutting each), so `alternatives` proposes a few width vectors within the budget
around the allocation and planner.plan keeps the one whose joint loss is lowest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gpusim.errors import WavecutError
from gpusim.predict import launch_overhead_us
from planner.candidates import WidthModel, candidate_widths

EPS_US = 1e-9


@dataclass
class Problem:
    """A priced network, its groups' allowed widths and the importance kept at each width."""

    model: WidthModel
    allowed: list[list[int]]  # per group, ascending; [full] for locked groups
    cum: list[np.ndarray]  # cum[g][w]: importance kept with the top-w channels of group g
    loss: Callable[[np.ndarray], float] | None = None  # measured joint loss of widths (measured importance only)

    @property
    def full(self) -> np.ndarray:
        """Full width of each group."""
        return self.model.full

    def importance(self, widths: np.ndarray) -> float:
        """Importance kept at `widths` (sum over groups of their top channels' scores)."""
        return float(sum(c[w] for c, w in zip(self.cum, widths)))

    def lowest(self) -> np.ndarray:
        """Every group at its narrowest allowed width."""
        return np.array([a[0] for a in self.allowed], dtype=np.int64)


def cumulative_importance(scores: np.ndarray) -> np.ndarray:
    """Importance kept at each width 0..n when the highest scores are kept (scores comparable across groups,
    see planner.plan.prepare)."""
    s = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    return np.concatenate([[0.0], np.cumsum(s)])


def greedy(problem: Problem, budget_us: float) -> np.ndarray:
    """Latency-saliency greedy down to the budget, then fill up to it (see the module doc)."""
    widths = problem.full.copy()
    cands, tables = _priced_edges(problem, widths)
    latency = problem.model.latency(widths)
    stale: set[int] = set()
    # A group's best move depends only on its own prices and width, so only the changed group is re-scored.
    down = {g: _group_move(problem, g, cands[g], table, widths, True, np.inf) for g, table in tables.items()}
    while latency > budget_us:
        move = _best(down)
        if move is None:
            break
        latency += _apply(problem, cands, tables, widths, move, stale)
        down[move[0]] = _group_move(problem, move[0], cands[move[0]], tables[move[0]], widths, True, np.inf)
    return _fill(problem, cands, tables, widths, latency, budget_us, stale)


def fill(problem: Problem, widths: np.ndarray, budget_us: float) -> np.ndarray:
    """`widths` grown, group by group (free growth first, then the most importance per microsecond), among
    step edges priced at `widths`, while the latency stays within the budget; then grown to their step edges."""
    widths = widths.copy()
    cands, tables = _priced_edges(problem, widths)
    return grow_to_edges(
        problem, _fill(problem, cands, tables, widths, problem.model.latency(widths), budget_us, set())
    )


def _priced_edges(problem: Problem, widths: np.ndarray) -> tuple[list[list[int]], dict[int, np.ndarray]]:
    """Each group's step edges (and its current width), others at `widths`; and each prunable group's prices
    at its edges."""
    found = candidate_widths(problem.model, problem.allowed, widths)
    cands = [c if int(w) in c else sorted({*c, int(w)}) for c, w in zip(found, widths)]
    prunable = [g for g, a in enumerate(problem.allowed) if len(a) > 1]
    return cands, dict(zip(prunable, problem.model.group_tables([(g, cands[g]) for g in prunable], widths)))


def _fill(
    problem: Problem,
    cands: list[list[int]],
    tables: dict[int, np.ndarray],
    widths: np.ndarray,
    latency: float,
    budget_us: float,
    stale: set[int],
) -> np.ndarray:
    """Grow the best group (see `_group_move`) while the latency stays within the budget; widths in place."""
    while True:
        move = _best(
            {
                g: _group_move(problem, g, cands[g], table, widths, False, budget_us - latency)
                for g, table in tables.items()
            }
        )
        if move is None:
            return widths
        latency += _apply(problem, cands, tables, widths, move, stale)


Scored = tuple[tuple, tuple[int, int, float]] | None  # (ranking key, (group, new width, latency change))


def _best(scored: dict[int, Scored]) -> tuple[int, int, float] | None:
    """The move with the largest key (the first group's on ties), or None when no group can move."""
    found = [s for s in scored.values() if s is not None]
    return max(found, key=lambda s: s[0])[1] if found else None


def _group_move(
    problem: Problem, g: int, cands: list[int], table: np.ndarray, widths: np.ndarray, down: bool, slack: float
) -> Scored:
    """Group g's best move down (importance kept per microsecond saved) or up within `slack` (free growth
    first, then importance gained per microsecond), with its key; None when it has none.

    Ties in importance (channels that score 0, e.g. every channel of a model whose classifier starts at zero,
    as torchvision's ViT does) go to the move that keeps the larger share of the group's channels per
    microsecond, so equal importance never sends a group to its floor or leaves the budget unspent."""
    best: Scored = None
    here = cands.index(widths[g])
    for j, w in enumerate(cands):
        if (w < widths[g]) != down or w == widths[g]:
            continue
        d_lat = table[j] - table[here]
        d_imp = problem.cum[g][w] - problem.cum[g][widths[g]]
        d_kept = (w - widths[g]) / problem.full[g]  # share of the group's channels gained (< 0 down)
        if down:
            if d_lat >= -EPS_US:
                continue
            key = (d_imp / -d_lat, d_kept / -d_lat)  # larger (less negative) is better
        else:
            # no gain, no growth, unless the group carries no importance at all (then channels break the tie)
            if d_lat > slack or d_imp < 0 or (d_imp == 0 and problem.cum[g][-1] > 0):
                continue
            key = (d_lat <= EPS_US, d_imp / max(d_lat, EPS_US), d_kept / max(d_lat, EPS_US))
        if best is None or key > best[0]:
            best = (key, (g, w, d_lat))
    return best


def _apply(
    problem: Problem,
    cands: list[list[int]],
    tables: dict[int, np.ndarray],
    widths: np.ndarray,
    move: tuple[int, int, float],
    stale: set[int],
) -> float:
    """Take the move if its group's prices are fresh (lazy greedy); else re-price the group and take nothing.

    Returns the latency change. Neighbours of a moved group become stale: their prices are refreshed only
    when they are chosen next, so the running latency stays exact."""
    g, w, d_lat = move
    if g in stale:
        stale.discard(g)
        tables[g] = problem.model.group_tables([(g, cands[g])], widths)[0]
        return 0.0
    widths[g] = w
    tables[g] = problem.model.group_tables([(g, cands[g])], widths)[0]
    stale.update(h for h in problem.model.neighbours(g) if h in tables)
    return d_lat


def grow_to_edges(problem: Problem, widths: np.ndarray, groups: list[int] | None = None) -> np.ndarray:
    """Move every group (or those in `groups`) up to the right edge of its current step (widest width at no extra
    latency), one after the other."""
    widths = widths.copy()
    for g in range(len(widths)) if groups is None else groups:
        allowed = problem.allowed[g]
        above = [int(widths[g])] + [w for w in allowed if w > widths[g]]
        if len(above) < 2:
            continue
        table = problem.model.group_tables([(g, above)], widths)[0]
        widths[g] = max(w for w, t in zip(above, table) if t <= table[0] + EPS_US)
    return widths


SELECTION = 12  # width vectors whose joint loss is measured per plan (each is one pruned copy of the model)
TOWARD = (0.25, 0.5, 0.75)  # points on the way from the allocation to the uniform allocation


def alternatives(
    problem: Problem, budget_us: float, widths: np.ndarray, uniform: np.ndarray | None, count: int = SELECTION
) -> list[np.ndarray]:
    """Distinct width vectors within the budget, `widths` first, for a measured choice among them (at most
    `count`, deterministic): `widths`; `uniform` (the uniform allocation at the budget); the points TOWARD of the
    way from `widths` to `uniform` (each group floored to an allowed width, then grown by `fill`); then one-step
    trades, most importance first: group g up to its next step edge, group h down to its widest allowed width
    that brings the latency back within the budget, then every group grown to its step edge."""
    found = [widths]
    if uniform is not None:
        found.append(uniform)
        for t in TOWARD:
            point = widths + t * (uniform - widths)
            floored = [max([a for a in allowed if a <= p] or allowed[:1]) for allowed, p in zip(problem.allowed, point)]
            found.append(fill(problem, np.array(floored, dtype=np.int64), budget_us))
    found += sorted(_trades(problem, budget_us, widths), key=problem.importance, reverse=True)  # stable on ties
    unique: dict[tuple[int, ...], np.ndarray] = {}
    for w, latency in zip(found, problem.model.latencies(found)):
        if latency <= budget_us:
            unique.setdefault(tuple(int(x) for x in w), w)
    return list(unique.values())[:count]


def _trades(problem: Problem, budget_us: float, widths: np.ndarray) -> list[np.ndarray]:
    """One-step trades between two groups within the budget (see `alternatives`), in group order."""
    edges = candidate_widths(problem.model, problem.allowed, widths)
    prunable = [g for g, a in enumerate(problem.allowed) if len(a) > 1]
    found = []
    for g in prunable:
        up = [int(c) for c in edges[g] if c > widths[g]]
        if not up:
            continue
        raised = widths.copy()
        raised[g] = up[0]
        slack = budget_us - problem.model.latency(raised)
        for h in prunable:
            down = [a for a in problem.allowed[h] if a < raised[h]]
            if h == g or not down:
                continue
            table = problem.model.group_tables([(h, [int(raised[h]), *down])], raised)[0]
            fits = [a for a, t in zip(down, table[1:]) if t - table[0] <= slack]
            if fits:
                traded = raised.copy()
                traded[h] = max(fits)
                found.append(grow_to_edges(problem, traded))
    return found


def unreachable(problem: Problem, budget_us: float) -> WavecutError:
    """The one-line error for a budget below the lowest latency the groups can reach, saying what holds the
    latency up: groups that are locked (the first one's reason) and the launches' fixed overhead."""
    lowest = problem.lowest()
    low = problem.model.latency(lowest)
    groups = problem.model.groups
    locked = [g.locked for g in groups if not g.prunable]
    held = ""
    if locked:
        held = f"; {len(locked)} of {len(groups)} channel groups are locked, the first by {locked[0]}"
    launches = len(problem.model.predict(lowest).launches)
    overhead = launches * launch_overhead_us(problem.model.spec)
    return WavecutError(
        f"budget {budget_us:.1f} us cannot be reached: the lowest predicted latency is {low:.1f} us "
        f"(every prunable group at its minimum width{held}; its {launches} kernel launches cost "
        f"{overhead:.0f} us of launch overhead at any width); raise the budget"
    )


UNIFORM_KEEPS = np.round(np.arange(1.0, 0.0, -0.01), 2)
UNIFORM_CHUNK = 10  # ratios priced per gpusim call


def uniform_widths(problem: Problem, keep: float, round_to: int = 1) -> np.ndarray:
    """Every prunable group at `keep` of its width (floored to a multiple of round_to, and of the group count of
    the grouped convs it touches), clipped to its allowed range."""
    widths = []
    for full, allowed, group in zip(problem.full, problem.allowed, problem.model.groups):
        w = int(round(full * keep)) if round_to == 1 else int(full * keep) // round_to * round_to
        w -= w % group.channel_groups
        widths.append(min(full, max(allowed[0], w)))
    return np.array(widths, dtype=np.int64)


def uniform_at_budget(problem: Problem, budget_us: float, round_to: int = 1) -> tuple[float, np.ndarray] | None:
    """The largest uniform keep ratio (1% steps) whose predicted latency meets the budget, and its widths.

    Ratios are priced from the top in chunks of UNIFORM_CHUNK, stopping at the first chunk that meets the budget
    (latency need not fall monotonically with the ratio, so every larger ratio is checked)."""
    for at in range(0, len(UNIFORM_KEEPS), UNIFORM_CHUNK):
        keeps = UNIFORM_KEEPS[at : at + UNIFORM_CHUNK]
        configs = [uniform_widths(problem, k, round_to) for k in keeps]
        for keep, widths, latency in zip(keeps, configs, problem.model.latencies(configs)):
            if latency <= budget_us:
                return float(keep), widths
    return None
