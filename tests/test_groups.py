"""Channel groups from Torch-Pruning's dependency graph: residual streams, depthwise, SE, MLPs, locked groups."""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision

from planner.groups import classifier_layers, find_groups


def _groups(name: str, size: int = 64):
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {g.name: g for g in find_groups(model, torch.zeros(1, 3, size, size))}


def test_resnet18_residual_group_of_layer1() -> None:
    groups = _groups("resnet18")
    stream = groups["conv1"]
    assert stream.full_width == 64
    assert stream.producers == ("conv1", "layer1.0.conv2", "layer1.1.conv2")
    assert stream.consumers == ("layer1.0.conv1", "layer1.1.conv1", "layer2.0.conv1", "layer2.0.downsample.0")
    assert groups["layer1.0.conv1"].producers == ("layer1.0.conv1",)
    assert groups["layer1.0.conv1"].consumers == ("layer1.0.conv2",)
    assert len(groups) == 12 and all(g.prunable for g in groups.values())
    # the classifier's outputs are never a group; its inputs belong to the last residual stream
    assert "fc" not in groups and "fc" in groups["layer4.0.conv2"].consumers


def test_mobilenet_v2_depthwise_joins_expand_and_project() -> None:
    groups = _groups("mobilenet_v2")
    expand = groups["features.2.conv.0.0"]
    assert expand.producers == ("features.2.conv.0.0", "features.2.conv.1.0")  # 1x1 expand + 3x3 depthwise
    assert expand.consumers == ("features.2.conv.2",)  # the depthwise conv counts once, as a producer


def test_mobilenet_v3_squeeze_excitation_has_its_own_group() -> None:
    groups = _groups("mobilenet_v3_large")
    se = [g for g in groups.values() if g.name.endswith("fc1")]
    assert se and all(len(g.producers) == 1 and g.consumers[0].endswith("fc2") for g in se)


def test_regnet_grouped_convs_keep_their_group_count() -> None:
    # regnet_y_400mf's bottlenecks: 1x1 (f.a) -> grouped 3x3 (f.b, groups of 8 channels) -> 1x1 (f.c); both
    # groups around each grouped conv are prunable in steps of its group count (48 channels: 6 groups)
    groups = _groups("regnet_y_400mf")
    a, b = groups["trunk_output.block1.block1-0.f.a.0"], groups["trunk_output.block1.block1-0.f.b.0"]
    assert (a.full_width, a.channel_groups, b.channel_groups) == (48, 6, 6) and a.prunable and b.prunable
    assert a.width_multiple(8) == 24 and a.width_multiple(1) == 6
    assert all(g.prunable for g in groups.values())


def test_grouped_conv_pruning_keeps_the_same_positions_in_every_group() -> None:
    """Positions 1 and 2 of every conv group of the first conv's outputs (channels p, p + 4, p + 8, p + 12) are
    dead (zero filters): planning by magnitude keeps positions 0 and 3 everywhere, and removing the dead ones
    leaves the network's output unchanged (Torch-Pruning slices the grouped conv's weights by position)."""
    from torch import nn

    from planner.apply import prune
    from planner.candidates import group_widths
    from planner.plan import GroupWidth, by_position, kept_indices

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3, groups=4), nn.ReLU(), nn.Conv2d(16, 8, 1))
    dead = [p + 4 * j for j in range(4) for p in (1, 2)]
    with torch.no_grad():
        net[0].weight[dead] = 0.0
        net[0].bias[dead] = 0.0
    x = torch.randn(2, 3, 12, 12)
    before = net(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (first, second) = find_groups(net, x[:1])
    assert (first.channel_groups, second.channel_groups, first.full_width) == (4, 4, 16)
    assert group_widths(first, 8) == [8, 16] and group_widths(first, 1) == [8, 12, 16]  # from 8 channels
    scores = by_position(net[0].weight.detach().abs().sum(dim=(1, 2, 3)).double().numpy(), first)
    kept = kept_indices(scores, 8, first.channel_groups)
    assert kept == [0, 3, 4, 7, 8, 11, 12, 15]
    planned = GroupWidth(
        name=first.name, full_width=16, width=8, kept=kept, producers=list(first.producers), consumers=[],
        importance_kept=1.0,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prune(net, [planned], x[:1], calibration=x)  # no compensation across conv groups
    assert (net[0].out_channels, net[2].in_channels, net[2].groups, tuple(net[2].weight.shape)) == (
        8,
        8,
        4,
        (16, 2, 3, 3),
    )
    torch.testing.assert_close(net(x), before)


@pytest.mark.slow
def test_vit_mlp_hidden_widths_and_heads_are_prunable() -> None:
    groups = _groups("vit_b_16", 224)
    prunable = [g for g in groups.values() if g.prunable]
    mlp = [g for g in prunable if not g.head_dim]
    heads = [g for g in prunable if g.head_dim]
    assert len(mlp) == 12 and all(g.name.endswith("mlp.0") and g.full_width == 3072 for g in mlp)
    # one head group per block: 12 heads of 64 channels (torchvision vit_b_16: hidden 768, 12 heads)
    assert len(heads) == 12 and all(
        g.name.endswith("self_attention") and (g.full_width, g.head_dim) == (12, 64) for g in heads
    )
    assert all("attention" in g.locked for g in groups.values() if not g.prunable)


def test_classifier_is_found_by_its_output() -> None:
    model = torchvision.models.get_model("vgg16", weights=None).eval()
    assert classifier_layers(model, torch.zeros(1, 3, 32, 32)) == [model.classifier[6]]


def test_groups_and_classifier_come_from_one_forward_pass() -> None:
    torch.manual_seed(0)
    model = torchvision.models.get_model("resnet18", weights=None).eval()
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        groups = find_groups(model, torch.zeros(1, 3, 32, 32))
    assert len(calls) == 1 and len(groups) == 12
    assert "fc" in {g.name: g for g in groups}["layer4.0.conv2"].consumers  # the classifier is found too


def test_conv_classifier_behind_pooling_is_not_pruned() -> None:
    """squeezenet's classifier is a 1000-way conv followed by ReLU, pooling and flatten: its outputs are the
    model's classes, so no channel group may shrink them (a plan did: output (1, 896) instead of (1, 1000))."""
    from planner.groups import dependency_graph

    model = torchvision.models.squeezenet1_0().eval()
    _, classifier = dependency_graph(model, torch.zeros(1, 3, 64, 64))
    assert classifier == [model.classifier[1]]
