"""Exact allocation: a multiple-choice knapsack over each group's candidate widths, solved as a MILP
(scipy.optimize.milp, HiGHS), beside the greedy of planner.allocate.

Binary x[g, c] picks candidate width c of group g (exactly one per group); the objective is the importance
kept, sum of cum[g][c] x[g, c], which is exact. Latency is not separable over groups (a conv's time depends
on its input and its output group), so the knapsack weight of a choice is its latency change with the other
groups at reference widths (first the greedy's), and the exact latency of the solution is checked: if it
exceeds the budget, the knapsack's capacity is lowered by the excess and the problem re-solved; if it meets
it, the choices are re-priced around the solution. The best solution that meets the budget by the exact
latency is returned (the greedy's own widths are a choice of the first knapsack, so it never keeps less). The MILP is exact for its linearised latency; `benchmarks.planner_accuracy --exact`
reports the greedy's gap to it.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import LinearConstraint, milp
from scipy.sparse import lil_matrix

from gpusim.errors import WavecutError
from planner.allocate import Problem, greedy, grow_to_edges, unreachable
from planner.candidates import candidate_widths

ROUNDS = 6


def exact_widths(problem: Problem, budget_us: float, start: np.ndarray | None = None) -> np.ndarray:
    """The MILP's widths (see the module doc): the most importance found within the budget by exact latency."""
    if problem.model.latency(problem.lowest()) > budget_us:
        raise unreachable(problem, budget_us)
    reference = greedy(problem, budget_us) if start is None else start.copy()
    # the reference is a choice of the first knapsack (weight 0), so the MILP never keeps less importance
    best: np.ndarray | None = reference if problem.model.latency(reference) <= budget_us else None
    capacity = budget_us
    for _ in range(ROUNDS):
        widths = _solve(problem, reference, capacity)
        if widths is None:
            break
        widths = grow_to_edges(problem, widths)
        latency = problem.model.latency(widths)
        if latency <= budget_us:
            if best is None or problem.importance(widths) > problem.importance(best):
                best = widths
            if np.array_equal(widths, reference):
                break
            reference = widths
        else:
            capacity -= latency - budget_us
    if best is None:
        raise WavecutError(
            f"the exact allocation found no widths within {budget_us:.1f} us; use --method greedy for this budget"
        )
    return best


def _solve(problem: Problem, reference: np.ndarray, capacity: float) -> np.ndarray | None:
    """The knapsack's widths with choices priced around `reference`, or None when it is infeasible."""
    prunable = [g for g, a in enumerate(problem.allowed) if len(a) > 1]
    edges = candidate_widths(problem.model, problem.allowed, reference)
    cands = [sorted({*edges[g], int(reference[g]), problem.allowed[g][0]}) for g in prunable]
    tables = problem.model.group_tables(list(zip(prunable, cands)), reference)
    base = problem.model.latency(reference)
    values, weights, owner = [], [], []
    for k, (g, cs, table) in enumerate(zip(prunable, cands, tables)):
        here = table[cs.index(int(reference[g]))]
        for c, t in zip(cs, table):
            values.append(problem.cum[g][c])
            weights.append(t - here)
            owner.append(k)
    n = len(values)
    choose = lil_matrix((len(prunable), n))
    for j, k in enumerate(owner):
        choose[k, j] = 1.0
    result = milp(
        c=-np.array(values),
        integrality=np.ones(n),
        bounds=(0, 1),
        constraints=[
            LinearConstraint(choose.tocsr(), 1, 1),
            LinearConstraint(np.array(weights)[None, :], -np.inf, capacity - base),
        ],
    )
    if result.x is None:
        return None
    widths = reference.copy()
    picked = np.flatnonzero(result.x > 0.5)
    flat = [(g, c) for g, cs in zip(prunable, cands) for c in cs]
    for j in picked:
        g, c = flat[j]
        widths[g] = c
    return widths
