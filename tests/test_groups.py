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


def test_regnet_grouped_convs_are_locked() -> None:
    groups = _groups("regnet_y_400mf")
    locked = [g for g in groups.values() if not g.prunable]
    assert locked and all("grouped conv" in g.locked for g in locked)
    assert any(g.prunable for g in groups.values())


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
