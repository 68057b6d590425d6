"""Network.predict_many: many width vectors and settings in one vectorised pass, equal to one-at-a-time prediction."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torchvision

from gpusim.errors import WavecutError
from planner.candidates import WidthModel, allowed_widths, minimum_width
from planner.groups import find_groups
from planner.network import Network, Setting

SHAPE = (3, 64, 64)


def _traced(name: str):
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Network.from_model(model, SHAPE, name), find_groups(model, torch.zeros(1, *SHAPE))


@pytest.fixture(scope="module")
def resnet18():
    return _traced("resnet18")


@pytest.fixture(scope="module")
def mobilenet_v2():
    return _traced("mobilenet_v2")


def _random_widths(groups, count: int, seed: int = 0) -> np.ndarray:
    """Width vectors with every prunable group at a random multiple of 8 (and of its conv group count; locked
    groups at full width)."""
    rng = np.random.default_rng(seed)
    steps = [g.width_multiple(8) for g in groups]
    choices = [
        allowed_widths(g.full_width, s, minimum_width(g.full_width, s)) if g.prunable else [g.full_width]
        for g, s in zip(groups, steps)
    ]
    return np.array([[rng.choice(c) for c in choices] for _ in range(count)], dtype=np.int64)


@pytest.mark.parametrize("fixture", ["resnet18", "mobilenet_v2"])
@pytest.mark.parametrize("setting", [Setting("a100", 1, "fp16", "fused"), Setting("t4", 8, "fp32", "eager")])
def test_width_vectors_equal_one_at_a_time_prediction(request, fixture: str, setting: Setting) -> None:
    net, groups = request.getfixturevalue(fixture)
    widths = _random_widths(groups, 24)
    widths[:8] = widths[0]  # repeated configurations share every op
    batched = net.predict_many([setting], widths, groups)[0]
    one = WidthModel(net, groups, setting.gpu, setting.batch, setting.dtype, setting.mode)
    reference = [one.predict(w).total_us for w in widths]  # every op built and predicted afresh
    assert batched.tolist() == reference  # exactly: same op prices, same summation order
    assert len(set(batched[8:].tolist())) == 16  # distinct vectors, distinct totals


def test_settings_without_widths_equal_network_predict(resnet18) -> None:
    net, _ = resnet18
    settings = [
        Setting(g, b, d, m)
        for g in ("a100", "t4")
        for b in (1, 32)
        for d in ("fp16", "fp32")
        for m in ("eager", "fused")
    ]
    batched = net.predict_many(settings)
    assert batched.shape == (16, 1)
    assert batched[:, 0].tolist() == [net.predict(s.gpu, s.batch, s.dtype, s.mode).total_us for s in settings]


def test_full_widths_equal_the_unpruned_network(resnet18) -> None:
    net, groups = resnet18
    full = np.array([[g.full_width for g in groups]] * 3)
    assert net.predict_many([Setting("v100")], full, groups)[0].tolist() == [net.predict("v100").total_us] * 3


def test_narrower_widths_are_never_slower_in_one_group(resnet18) -> None:
    # layer4's output group at 512 vs 8 channels: fewer channels in every op it touches, less time
    net, groups = resnet18
    widths = np.array([[g.full_width for g in groups]] * 2)
    widths[1, -1] = 8
    wide, narrow = net.predict_many([Setting("a100")], widths, groups)[0]
    assert narrow < wide


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda w: w[:, :-1], "widths: expected one column per channel group"),
        (lambda w: w * 0, "is not in 1.."),
        (lambda w: w + 1, "is not in 1.."),
    ],
)
def test_bad_width_vectors_are_one_line(resnet18, change, message: str) -> None:
    net, groups = resnet18
    widths = np.array([[g.full_width for g in groups]])
    with pytest.raises(WavecutError, match=message):
        net.predict_many([Setting()], change(widths), groups)


def test_bad_settings_are_one_line(resnet18) -> None:
    net, _ = resnet18
    with pytest.raises(WavecutError, match="--batch"):
        net.predict_many([Setting(batch=0)])
    with pytest.raises(WavecutError, match="--mode"):
        net.predict_many([Setting(mode="lazy")])
    with pytest.raises(WavecutError, match="dtype"):
        net.predict_many([Setting(dtype="fp8e4")])


def test_grouped_convs_and_squeeze_excitation_equal_one_at_a_time_prediction() -> None:
    # regnet_y_400mf: 32 of its 53 groups feed or leave grouped convs (widths in steps of their group counts);
    # SE scales are broadcast multiplies
    net, groups = _traced("regnet_y_400mf")
    assert sum(1 for g in groups if g.channel_groups > 1) == 32 and not any(g.locked for g in groups)
    widths = _random_widths(groups, 8)
    batched = net.predict_many([Setting("l4", 2, "bf16", "eager")], widths, groups)[0]
    one = WidthModel(net, groups, "l4", 2, "bf16", "eager")
    assert batched.tolist() == [one.predict(w).total_us for w in widths]
    grouped = next(g for g in range(len(groups)) if groups[g].channel_groups > 1)
    widths[0, grouped] -= 8  # 6 conv groups: 8 fewer channels is no longer a multiple of 6
    with pytest.raises(WavecutError, match=r"widths: row 0, group .* is not a multiple of 6, the group count"):
        net.predict_many([Setting()], widths, groups)
