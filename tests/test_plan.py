"""wavecut plan: budgets, comparison with uniform pruning, unreachable budgets, exact latency bookkeeping."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gpusim.errors import WavecutError
from planner.allocate import UNIFORM_KEEPS, cumulative_importance, uniform_at_budget, uniform_widths
from planner.candidates import allowed_widths, minimum_width
from planner.plan import comparable, make_plan, parse_budget, prepare, problem_for
from tests.conftest import run_cli

SHAPE = (3, 64, 64)


@pytest.fixture(scope="module")
def resnet18():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare("resnet18", SHAPE)


def test_budget_parsing() -> None:
    assert parse_budget("0.7", 1000.0) == pytest.approx(700.0)
    assert parse_budget("2.5ms", 1000.0) == 2500.0
    assert parse_budget("800us", 1000.0) == 800.0
    for bad in ("1.5", "0", "-3ms", "fast"):
        with pytest.raises(WavecutError, match="--budget"):
            parse_budget(bad, 1000.0)


def test_widths_respect_minimum_and_alignment() -> None:
    assert minimum_width(64, 8) == 8 and minimum_width(512, 8) == 56 and minimum_width(100, 1) == 10
    assert allowed_widths(100, 8, 16) == [16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 100]
    cum = cumulative_importance(np.array([3.0, 1.0, 2.0]))
    assert cum.tolist() == pytest.approx([0.0, 3.0, 5.0, 6.0])  # best first, not rescaled per group


def test_magnitude_scores_are_scaled_to_the_groups_taylor_sensitivity() -> None:
    raw = np.array([3.0, 1.0, 0.0, 4.0])
    assert comparable(raw, 0.5).tolist() == pytest.approx([0.1875, 0.0625, 0.0, 0.25])  # sums to 0.5, same order
    assert comparable(np.zeros(4), 0.2).tolist() == pytest.approx([0.05] * 4)


@pytest.mark.parametrize("gpu,batch,budget", [("t4", 8, "0.8"), ("a100", 32, "0.75"), ("h100", 1, "0.9")])
def test_plan_meets_budget_and_beats_uniform(resnet18, gpu: str, batch: int, budget: str) -> None:
    plan = make_plan("resnet18", gpu, budget, batch, input_shape=SHAPE, prep=resnet18)
    assert plan.planned_latency_us <= plan.budget_us
    assert plan.budget_us == pytest.approx(float(budget) * plan.baseline_latency_us)
    ours, uniform, rounded = plan.comparison
    assert ours.latency_us == pytest.approx(plan.planned_latency_us)
    for other in (uniform, rounded):
        if other.latency_us is not None:
            assert other.latency_us <= plan.budget_us
            assert ours.importance >= other.importance
    problem = problem_for(resnet18, gpu, batch)
    for g, a in zip(plan.groups, problem.allowed):
        assert g.width in a and len(g.kept) == g.width and g.kept == sorted(set(g.kept))
    # the per-layer table adds up to the planned latency
    assert sum(layer.after_us for layer in plan.layers) == pytest.approx(plan.planned_latency_us)
    assert sum(layer.before_us for layer in plan.layers) == pytest.approx(plan.baseline_latency_us)


def test_plan_keeps_strictly_more_importance_than_uniform(resnet18) -> None:
    plan = make_plan("resnet18", "a100", "0.7", 32, input_shape=SHAPE, prep=resnet18)
    assert plan.comparison[0].importance > plan.comparison[1].importance


def test_kept_channels_are_the_most_important(resnet18) -> None:
    plan = make_plan("resnet18", "t4", "0.8", 8, input_shape=SHAPE, prep=resnet18)
    for g, scores in zip(plan.groups, resnet18.scores):
        dropped = sorted(set(range(g.full_width)) - set(g.kept))
        if dropped:
            assert scores[g.kept].min() >= scores[dropped].max()


def test_uniform_widths_are_clipped_to_the_allowed_range(resnet18) -> None:
    problem = problem_for(resnet18, "t4", 8)
    widths = uniform_widths(problem, 0.01, 8)
    assert widths.tolist() == [a[0] for a in problem.allowed]


def test_unreachable_budget_is_one_line(tmp_path) -> None:
    result = run_cli(
        "plan", "resnet18", "--gpu", "t4", "--budget", "5us", "--input", "3x32x32", "--out", str(tmp_path / "p.json")
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "budget 5.0 us cannot be reached: the lowest predicted latency is" in result.stderr
    # what holds it up: resnet18 locks no group; its launches' fixed overhead (4 us each on a T4) is named
    launches = int(result.stderr.split(" kernel launches")[0].rsplit(" ", 1)[1])
    assert f"its {launches} kernel launches cost {4 * launches} us of launch overhead" in result.stderr
    assert "locked" not in result.stderr and result.stderr.rstrip().endswith("raise the budget")


def test_unreachable_budget_names_the_locked_groups() -> None:
    import torch
    from torch import nn

    from planner.allocate import unreachable
    from planner.calibration import Calibration
    from planner.plan import prepare_module

    net = nn.Sequential(
        nn.Conv2d(3, 16, 3), nn.Conv2d(16, 16, 3, groups=4), nn.Conv2d(16, 16, 3, groups=2), nn.Conv2d(16, 8, 1)
    )
    batch = Calibration(torch.randn(4, 3, 16, 16), None, "test batch")
    problem = problem_for(prepare_module(net, "net", (3, 16, 16), "magnitude", batch), "t4", 8)
    message = str(unreachable(problem, 1.0))
    # the first conv feeds the 4-group conv (prunable in steps of 4); that one's outputs feed the 2-group conv,
    # whose outputs feed the last: a group between convs of 4 and 2 groups cannot keep both counts (locked)
    assert "1 of 3 channel groups are locked, the first by grouped convs 2 (2 groups) and 1 (4 groups)" in message


def test_cached_pricing_equals_a_full_prediction(resnet18) -> None:
    model = problem_for(resnet18, "t4", 8).model
    # layer1.0 and layer1.1 (and the later blocks' second convs) repeat: 23 ops, 14 distinct shapes to price
    assert len(model.shape_class) == 23 and len(set(model.shape_class)) == 14
    rng = np.random.default_rng(0)
    configs = [np.array([rng.integers(1, f // 8 + 1) * 8 for f in model.full]) for _ in range(5)]
    for widths, total in zip(configs, model.latencies(configs)):
        full = model.predict(widths)  # every op built and predicted afresh, no cache
        assert total == full.total_us  # exactly: same op times, same summation
        assert model.op_times([(i, widths) for i in range(len(model.base_ops))]).tolist() == full.op_times_us.tolist()


def test_uniform_search_finds_the_largest_ratio_in_budget(resnet18) -> None:
    problem = problem_for(resnet18, "a100", 32)
    all_latencies = problem.model.latencies([uniform_widths(problem, k) for k in UNIFORM_KEEPS])
    for budget in (0.6, 0.75, 0.95):
        budget_us = budget * all_latencies[0]
        expected = next(k for k, lat in zip(UNIFORM_KEEPS, all_latencies) if lat <= budget_us)
        keep, widths = uniform_at_budget(problem, budget_us)
        assert keep == expected and widths.tolist() == uniform_widths(problem, keep).tolist()
    assert uniform_at_budget(problem, 1.0) is None


def test_exact_allocation_meets_the_budget_and_keeps_at_least_the_greedys_importance(resnet18) -> None:
    from planner.exact import exact_widths
    from planner.plan import allocate

    problem = problem_for(resnet18, "a100", 32)
    budget = 0.7 * problem.model.latency(problem.full)
    greedy_widths = allocate(problem, budget)
    exact = exact_widths(problem, budget)
    assert problem.model.latency(exact) <= budget
    assert problem.importance(exact) >= problem.importance(greedy_widths) - 1e-12
    assert all(w in a for w, a in zip(exact, problem.allowed))
    with pytest.raises(WavecutError, match="cannot be reached"):
        exact_widths(problem, 1.0)


def test_channels_that_all_score_zero_keep_the_most_channels_the_budget_allows(resnet18) -> None:
    # torchvision's ViT starts with a zero classifier: every gradient-based score is 0. Equal importance must not
    # send the plan to every group's floor (the lowest latency) but fill the budget with channels.
    from dataclasses import replace

    from planner.plan import allocate

    problem = problem_for(resnet18, "a100", 32)
    flat = replace(problem, cum=[np.zeros_like(c) for c in problem.cum])
    budget = 0.8 * problem.model.latency(problem.full)
    widths = allocate(flat, budget)
    latency = problem.model.latency(widths)
    assert latency <= budget
    assert latency > problem.model.latency(problem.lowest())
    uniform = uniform_at_budget(problem, budget)[1]
    assert np.sum(widths / problem.full) >= np.sum(uniform / problem.full)
