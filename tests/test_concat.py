"""Concat groups: a channel concat's width is the sum of its inputs' groups; every torchvision CNN family plans."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from planner.apply import apply_plan
from planner.candidates import WidthModel
from planner.groups import find_groups
from planner.network import Network
from planner.plan import make_plan


class TwoBranch(nn.Module):
    """Two convs (16 and 24 channels) concatenated, a BN over the 40, and a consumer conv."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 16, 3, padding=1)
        self.b = nn.Conv2d(3, 24, 1)
        self.bn = nn.BatchNorm2d(40)
        self.c = nn.Conv2d(40, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.bn(torch.cat([self.a(x), self.b(x)], dim=1)))


def test_concat_fields_follow_each_inputs_group() -> None:
    model = TwoBranch().eval()
    groups = find_groups(model, torch.zeros(1, 3, 8, 8))
    by_name = {g.name: i for i, g in enumerate(groups)}
    assert [g.full_width for g in groups] == [16, 24]
    wm = WidthModel(Network.from_model(model, (3, 8, 8)), groups, "t4", 2, "fp32", "eager")
    widths = np.zeros(len(groups), dtype=np.int64)
    widths[by_name["a"]], widths[by_name["b"]] = 8, 16
    ops = dict(zip(wm.names, wm.ops(widths)))
    cat = next(n for n in wm.names if n.startswith("cat"))
    # batch 2 x (8 + 16) channels x 8 x 8 positions, in and out
    assert ops[cat].elements_out == ops[cat].elements_in == 2 * 24 * 64
    assert ops["bn"].elements_out == 2 * 24 * 64
    assert (ops["c"].in_channels, ops["c"].out_channels) == (24, 8)
    assert (ops["a"].out_channels, ops["b"].out_channels) == (8, 16)
    assert wm.deps[wm.names.index(cat)] == (0, 1)  # the concat is priced with both groups


CASES = [
    ("densenet121", 32, "0.9", True),
    ("googlenet", 32, "0.9", True),
    ("inception_v3", 75, "0.9", False),
    ("efficientnet_b0", 32, "0.9", False),
    ("convnext_tiny", 32, "0.9", False),
    ("regnet_y_400mf", 32, "0.97", False),
    ("mobilenet_v3_small", 32, "0.9", False),
]


@pytest.mark.slow
@pytest.mark.parametrize("model,size,budget,apply", CASES)
def test_torchvision_cnn_plans(model: str, size: int, budget: str, apply: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = make_plan(model, "t4", budget, 1, input_shape=(3, size, size))
        assert plan.planned_latency_us <= plan.budget_us
        assert any(g.width < g.full_width for g in plan.groups)
        if apply:
            applied = apply_plan(plan, compensation=False)
            assert applied.output_shape == (1, 1000)
            assert applied.predicted_us == pytest.approx(plan.planned_latency_us, rel=1e-9)
