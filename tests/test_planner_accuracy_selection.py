"""Measured importance: the choice among allocations by their joint loss (planner.allocate.alternatives,
planner.plan.allocate) and the split of the calibration batch between curves and choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gpusim.errors import WavecutError
from planner.allocate import Problem, alternatives, cumulative_importance
from planner.calibration import Calibration
from planner.groups import ChannelGroup
from planner.plan import _halves, allocate


class AdditiveModel:
    """A stand-in for WidthModel whose latency is linear in the widths: group g costs PRICE[g] us per channel,
    so every allowed width is a step edge and each case below is worked out by hand."""

    PRICE = (1.0, 2.0)

    def __init__(self) -> None:
        self.full = np.array([4, 4], dtype=np.int64)
        self.groups = [ChannelGroup(name, 4, (name,), ()) for name in ("a", "b")]

    def latency(self, widths: np.ndarray) -> float:
        return float(sum(p * w for p, w in zip(self.PRICE, widths)))

    def latencies(self, configs: list[np.ndarray]) -> list[float]:
        return [self.latency(w) for w in configs]

    def group_tables(self, requests: list[tuple[int, list[int]]], widths: np.ndarray) -> list[np.ndarray]:
        return [np.array([self.PRICE[g] * c for c in cands]) for g, cands in requests]

    def neighbours(self, g: int) -> set[int]:
        return set()


def problem(loss=None) -> Problem:
    """Two groups of 4 channels (widths 1..4), scores [4, 3, 2, 1] and [8, 6, 2, 1]: cum [0, 4, 7, 9, 10] and
    [0, 8, 14, 16, 17]; latency w0 + 2 w1 (12 us at full width)."""
    scores = [np.array([4.0, 3.0, 2.0, 1.0]), np.array([8.0, 6.0, 2.0, 1.0])]
    return Problem(AdditiveModel(), [[1, 2, 3, 4], [1, 2, 3, 4]], [cumulative_importance(s) for s in scores], loss)


def test_alternatives_are_the_allocation_uniform_and_one_step_trades_within_the_budget() -> None:
    # Budget 8 us from [4, 2] (8 us, importance 10 + 14 = 24). Uniform [3, 2] (7 us). The points toward uniform
    # floor to [3, 2] and fill back to [4, 2] (group 0's last channel: +1 importance for 1 us): duplicates.
    # Trades: group 0 is full; group 1 up to 3 (10 us) needs group 0 down to 2 (8 us): [2, 3].
    found = alternatives(problem(), 8.0, np.array([4, 2]), np.array([3, 2]))
    assert [w.tolist() for w in found] == [[4, 2], [3, 2], [2, 3]]
    assert alternatives(problem(), 8.0, np.array([4, 2]), np.array([3, 2]), count=2)[-1].tolist() == [3, 2]


def test_measured_choice_keeps_the_lowest_joint_loss_and_the_allocation_on_ties() -> None:
    # Greedy from [4, 4] (12 us) to 8 us: group 1 4 -> 3 (-1 importance / 2 us), then group 1 3 -> 2 (-2 / 2 us;
    # ties group 0 4 -> 3 at -1 / us, and keeps the larger share of channels per us): [4, 2]. Uniform rounded to 8
    # floors every width to 0, clipped to 1: [1, 1] (3 us). Alternatives: [4, 2], [1, 1], the trade [2, 3].
    assert allocate(problem(), 8.0).tolist() == [4, 2]
    calls = []

    def measured(losses: dict[tuple[int, int], float]):
        def loss(widths: np.ndarray) -> float:
            calls.append(tuple(widths.tolist()))
            return losses[calls[-1]]

        return loss

    assert allocate(problem(measured({(4, 2): 0.3, (1, 1): 0.5, (2, 3): 0.2})), 8.0).tolist() == [2, 3]
    assert calls == [(4, 2), (1, 1), (2, 3)]  # each measured once
    assert allocate(problem(measured({(4, 2): 0.3, (1, 1): 0.1, (2, 3): 0.2})), 8.0).tolist() == [1, 1]
    assert allocate(problem(measured({(4, 2): 0.1, (1, 1): 0.1, (2, 3): 0.1})), 8.0).tolist() == [4, 2]


def test_calibration_halves_alternate_inputs_and_labels() -> None:
    x = torch.arange(5.0).view(5, 1)
    curves, selection = _halves(Calibration(x, torch.tensor([0, 1, 2, 3, 4]), "five"))
    assert curves.x.flatten().tolist() == [0.0, 2.0, 4.0] and curves.labels.tolist() == [0, 2, 4]
    assert selection.x.flatten().tolist() == [1.0, 3.0] and selection.labels.tolist() == [1, 3]
    assert _halves(Calibration(x, None, "five"))[1].labels is None
    with pytest.raises(WavecutError, match="at least 2 calibration inputs, one has 1"):
        _halves(Calibration(x[:1], None, "one"))


def test_accuracy_benchmark_holds_its_calibration_images_out_of_training() -> None:
    from benchmarks.functionality import load_split
    from benchmarks.planner_accuracy import CALIBRATION, held_out

    split = load_split()
    train_split, calibration = held_out(split)
    assert (len(split.y_train), len(train_split.y_train), len(calibration.labels)) == (1347, 1091, 256)
    assert torch.equal(calibration.x, split.x_train[:256]) and torch.equal(train_split.x_train, split.x_train[256:])
    assert torch.equal(train_split.x_test, split.x_test) and CALIBRATION == 256
