"""Resumed forward passes (planner.importance.resume) give compensation the same consumer inputs as full passes:
the pruned models are bitwise equal, through in-place additions, concatenations and untraceable models."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import planner.apply
from planner.apply import apply_plan
from planner.importance.resume import ConsumerInputs
from planner.importance.signatures import capture
from planner.plan import make_plan

SHAPE = (3, 64, 64)


class _Residual(nn.Module):
    """conv -> bn, plus the input added in place (``out += x``), as torchvision's ResNet blocks do."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        out = self.bn(self.conv(x))
        out += x
        return self.head(torch.relu_(out))


class _Untraceable(_Residual):
    """The same network with a branch on a tensor's value, which torch.fx cannot trace."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > -1e9:
            x = self.stem(x)
        return self.head(self.bn(self.conv(x)) + x)


def _full(model: nn.Module, modules: list[nn.Module], x: torch.Tensor) -> dict[nn.Module, torch.Tensor]:
    model.eval()
    return capture(model, modules, x, "input", lambda t: t.detach().float())


@pytest.mark.parametrize("network", [_Residual, _Untraceable])
def test_a_resumed_pass_sees_every_change_after_its_checkpoint(network: type[nn.Module]) -> None:
    torch.manual_seed(0)
    model, x = network(), torch.randn(2, *SHAPE)
    inputs_of = ConsumerInputs(model, x)
    assert (inputs_of.graph is None) == (network is _Untraceable)
    first = inputs_of([model.conv, model.head], changing=[model.conv, model.bn])
    for module, value in _full(model, [model.conv, model.head], x).items():
        assert torch.equal(first[module], value)
    with torch.no_grad():  # what pruning a group does: its modules change, nothing in front of them
        model.conv.weight.mul_(0.5)
        model.bn.bias.add_(1.0)
    inputs_of.changed([model.conv, model.bn])
    second = inputs_of([model.head], changing=[model.head])
    assert torch.equal(second[model.head], _full(model, [model.head], x)[model.head])
    assert not torch.equal(second[model.head], first[model.head])
    with torch.no_grad():  # a change in front of the checkpoint: the next pass starts from the input again
        model.stem.weight.mul_(2.0)
    inputs_of.changed([model.stem])
    third = inputs_of([model.head], changing=[model.head])
    assert torch.equal(third[model.head], _full(model, [model.head], x)[model.head])


@pytest.mark.parametrize("name", ["resnet18", "densenet121"])
def test_apply_prunes_bitwise_as_with_full_passes(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """resnet18: in-place residual additions; densenet121: concatenations read by every later layer."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = make_plan(name, "t4", "0.7", 8, input_shape=SHAPE)
        resumed = apply_plan(plan).model.state_dict()
        monkeypatch.setattr(planner.apply, "ConsumerInputs", lambda model, calibration: None)
        full = apply_plan(plan).model.state_dict()
    assert resumed.keys() == full.keys()
    assert all(torch.equal(resumed[k], full[k]) for k in full)
