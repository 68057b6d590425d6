"""Tests for planner.importance: signatures, redundancy clustering and Torch-Pruning criteria."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch_pruning as tp
from torch import nn

from planner.importance import (
    FunctionalityImportance,
    MagnitudeImportance,
    TaylorImportance,
    cluster_channels,
    compensate,
    compute_signatures,
    cosine_similarity,
    rank_channels,
    redundancy_scores,
    synthetic_batch,
)


def _duplicate_filter_model() -> nn.Sequential:
    """Conv with 3 filters: #1 is #0 scaled by 0.5 (same function), #2 is distinct and smallest."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(3, 2, 1))
    with torch.no_grad():
        base = torch.randn(1, 3, 3)
        model[0].weight[0] = base
        model[0].weight[1] = 0.5 * base
        model[0].weight[2] = 0.2 * torch.randn(1, 3, 3)
    return model


def _root_group(model: nn.Module, layer: nn.Module, example: torch.Tensor) -> tp.dependency.Group:
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    return graph.get_pruning_group(layer, tp.prune_conv_out_channels, list(range(layer.out_channels)))


class _Residual(nn.Module):
    """conv1 -> conv2, added back to conv1's output: conv1 and conv2 outputs are coupled."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv1(x))
        return self.head(y + self.conv2(y))


def test_cosine_similarity_of_identical_signatures_is_one() -> None:
    signatures = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [-3.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    similarity = cosine_similarity(signatures)
    assert similarity[0, 1].item() == pytest.approx(1.0)
    assert similarity[0, 2].item() == pytest.approx(0.0, abs=1e-6)
    assert similarity[3, 3].item() == pytest.approx(1.0)
    assert similarity[0, 3].item() == pytest.approx(0.0, abs=1e-6)


def test_magnitude_importance_equals_hand_computed_l1_norms() -> None:
    model = _duplicate_filter_model()
    group = _root_group(model, model[0], torch.randn(1, 1, 6, 6))
    expected = model[0].weight.abs().sum(dim=(1, 2, 3))
    assert torch.allclose(MagnitudeImportance()(group), expected)
    assert torch.allclose(rank_channels(model, group, "magnitude"), expected)


def test_group_l2_sees_the_batchnorm_scale_and_the_consumer() -> None:
    """`group-l2` (Torch-Pruning's GroupMagnitudeImportance(p=2)): per channel the mean of its filter's squared
    L2 norm, its BatchNorm scale squared and its column of the consumer's weights squared, over the channels'
    mean. Hand-set weights: channel 0 has the largest filter but a BatchNorm scale of 0.1, so filter L1 keeps it
    first and group L2 last."""
    model = nn.Sequential(nn.Conv2d(1, 3, 1, bias=False), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 1, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([2.0, 1.5, 1.0]).view(3, 1, 1, 1))
        model[1].weight.copy_(torch.tensor([0.1, 3.0, 2.0]))
        model[3].weight.copy_(torch.tensor([1.0, 1.0, 2.0]).view(1, 3, 1, 1))
    group = _root_group(model, model[0], torch.randn(1, 1, 4, 4))
    per_channel = np.array([(4 + 0.01 + 1) / 3, (2.25 + 9 + 1) / 3, (1 + 4 + 4) / 3])
    expected = per_channel / per_channel.mean()
    assert rank_channels(model, group, "group-l2").numpy() == pytest.approx(expected, rel=1e-6)
    assert rank_channels(model, group, "magnitude").argmax().item() == 0
    assert rank_channels(model, group, "group-l2").argmin().item() == 0


@pytest.mark.parametrize("signature", ["response", "actmax"])
def test_duplicate_filter_ranked_lowest_and_distinct_one_kept(signature: str) -> None:
    model = _duplicate_filter_model()
    group = _root_group(model, model[0], torch.randn(1, 1, 6, 6))
    criterion = FunctionalityImportance(model, signature, input_shape=(1, 6, 6), keep_ratio=2 / 3, progress=False)
    scores = criterion(group)
    assert scores.argmin().item() == 1  # the weaker copy of filter 0
    assert scores[2] > scores[1] and scores[0] > scores[1]
    assert MagnitudeImportance()(group).argmin().item() == 2  # magnitude would drop the distinct one


def test_duplicate_signatures_are_identical() -> None:
    model = _duplicate_filter_model()
    signatures = compute_signatures(model, [model[0]], "response", synthetic_batch((1, 6, 6)))[model[0]]
    assert cosine_similarity(signatures)[0, 1].item() == pytest.approx(1.0, abs=1e-5)
    assert cosine_similarity(signatures)[0, 2].item() < 0.99


def test_clustering_into_exactly_k_clusters_keeps_k_representatives() -> None:
    torch.manual_seed(1)
    signatures = torch.randn(12, 20)
    contribution = torch.rand(12)
    for k in (1, 4, 7, 12):
        result = cluster_channels(signatures, contribution, n_clusters=k)
        assert len(set(result.labels.tolist())) == k
        assert sorted(result.labels[result.representatives].tolist()) == list(range(k))
        assert set(result.order[-k:].tolist()) == set(result.representatives.tolist())
        scores = redundancy_scores(signatures, contribution, n_clusters=k)
        assert set(scores.topk(k).indices.tolist()) == set(result.representatives.tolist())


def test_most_contributing_member_represents_its_cluster() -> None:
    signatures = torch.tensor([[1.0, 0.0], [0.99, 0.01], [0.0, 1.0]])
    result = cluster_channels(signatures, torch.tensor([1.0, 5.0, 2.0]), threshold=0.1)
    assert result.labels[0] == result.labels[1] != result.labels[2]
    assert sorted(result.representatives.tolist()) == [1, 2]
    assert result.order.tolist() == [0, 2, 1]


def test_metapruner_with_functionality_importance_prunes_and_runs() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )
    example = torch.randn(2, 3, 16, 16)
    pruner = tp.pruner.MetaPruner(
        model,
        example,
        importance=FunctionalityImportance(model, calibration=synthetic_batch((3, 16, 16))),
        pruning_ratio=0.5,
        ignored_layers=[model[-1]],
    )
    pruner.step()
    assert (model[0].out_channels, model[3].out_channels, model[-1].in_features) == (4, 8, 8)
    assert model(example).shape == (2, 10)


def test_coupled_residual_group_gets_one_score_per_channel() -> None:
    torch.manual_seed(0)
    model = _Residual()
    group = _root_group(model, model.conv1, torch.randn(1, 3, 8, 8))
    coupled = {item.dep.target.module for item in group if item.dep.handler == tp.prune_conv_out_channels}
    assert coupled == {model.conv1, model.conv2}
    for signature in ("response", "actmax"):
        scores = rank_channels(model, group, "functionality", signature, torch.randn(4, 3, 8, 8))
        assert scores.shape == (8,)
        assert sorted(scores.tolist()) == pytest.approx([i / 8 for i in range(1, 9)])
    magnitude = MagnitudeImportance()(group)
    expected = model.conv1.weight.abs().sum(dim=(1, 2, 3)) + model.conv2.weight.abs().sum(dim=(1, 2, 3))
    assert torch.allclose(magnitude, expected)


def test_signatures_are_cached_until_the_model_changes() -> None:
    model = _duplicate_filter_model()
    criterion = FunctionalityImportance(model, input_shape=(1, 6, 6))
    first = criterion.signatures([model[0]])[model[0]]
    assert criterion.signatures([model[0]])[model[0]] is first
    with torch.no_grad():
        model[0].weight.mul_(-1.0)
    assert criterion.signatures([model[0]])[model[0]] is not first


def test_synthetic_batch_is_deterministic() -> None:
    assert torch.equal(synthetic_batch((3, 16, 16), n=4), synthetic_batch((3, 16, 16), n=4))
    assert synthetic_batch((3, 16, 16), n=4).shape == (4, 3, 16, 16)


def test_unknown_method_is_rejected() -> None:
    model = _duplicate_filter_model()
    group = _root_group(model, model[0], torch.randn(1, 1, 6, 6))
    with pytest.raises(ValueError):
        rank_channels(model, group, "random")


class _TaylorNet(nn.Module):
    """conv(1->3) -> BN -> ReLU -> global pool -> linear(3->2); an optional mask scales the BN output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3, 2)
        self.mask: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        if self.mask is not None:
            y = y * self.mask.view(1, -1, 1, 1)
        return self.fc(torch.relu(y).mean(dim=(2, 3)))


def test_taylor_is_the_loss_change_of_removing_each_channel() -> None:
    """The score is |dL/dm| for a mask m on the BN output (activation x gradient), per batch, summed: removing a
    channel is m = 0, so to first order the loss changes by that much. A channel nothing reads scores 0."""
    torch.manual_seed(0)
    model = _TaylorNet().eval()
    with torch.no_grad():
        model.bn.weight.copy_(torch.tensor([1.0, 0.5, 2.0]))
        model.bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        model.fc.weight[:, 2] = 0.0  # channel 2 is never read
    x, y = torch.randn(8, 1, 6, 6), torch.tensor([0, 1] * 4)
    group = _root_group(model, model.conv, x[:1])
    scores = TaylorImportance(model, x, y, batch_size=4)(group)
    expected = torch.zeros(3)
    for batch, labels in zip(x.split(4), y.split(4)):
        model.mask = torch.ones(3, requires_grad=True)
        torch.nn.functional.cross_entropy(model(batch), labels, reduction="sum").backward()
        expected += model.mask.grad.abs()
    model.mask = None
    assert scores.tolist() == pytest.approx(expected.tolist(), rel=1e-4, abs=1e-7)
    assert scores[2] == pytest.approx(0.0, abs=1e-7) and scores[0] > 0 and scores[1] > 0
    # micro-batched backward passes (1 sample each, the default) accumulate the same gradient as one per batch
    whole = TaylorImportance(model, x, y, batch_size=4, micro_batch=4)(group)
    assert scores.tolist() == pytest.approx(whole.tolist(), rel=1e-5, abs=1e-8)


def _prune(model: nn.Module, layer: nn.Module, removed: list[int], example: torch.Tensor) -> None:
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    graph.get_pruning_group(layer, tp.prune_conv_out_channels, removed).prune()


def _bn_duplicate_model(relu: bool) -> nn.Sequential:
    """conv-BN(-ReLU)-conv: channel 1 repeats channel 0 after BN (x3 with ReLU, +0.7 without), channel 2 differs."""
    torch.manual_seed(0)
    middle = [nn.ReLU()] if relu else []
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), *middle, nn.Conv2d(3, 4, 1, bias=False)
    ).eval()
    conv, bn = model[0], model[1]
    with torch.no_grad():
        conv.weight[1] = -conv.weight[0]  # negated filter, undone by a negative BN scale below
        bn.running_mean.copy_(torch.tensor([0.2, -0.2, 0.1]))
        bn.running_var.copy_(torch.tensor([1.5, 1.5, 0.7]))
        bn.weight.copy_(torch.tensor([0.8, -0.8 * (3.0 if relu else 1.0), 1.1]))
        bn.bias.copy_(torch.tensor([0.1, 0.3 if relu else 0.8, -0.2]))
    return model


@pytest.mark.parametrize("relu", [True, False])
def test_compensation_exactly_reconstructs_a_duplicate_through_batchnorm(relu: bool) -> None:
    model = _bn_duplicate_model(relu)
    x = torch.randn(8, 2, 6, 6)
    expected = model(x)
    group = _root_group(model, model[0], x[:1])
    partners = compensate(model, group, kept=[0, 2], calibration=x)
    assert partners == {1: 0}
    assert (model[-1].bias is not None) == (not relu)  # the +0.7 shift needs a bias, the x3 copy does not
    _prune(model, model[0], [1], x[:1])
    assert model[-1].in_channels == 2
    assert torch.allclose(model(x), expected, atol=1e-5)


def test_compensation_by_layer_name_through_flatten_into_linear() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5)).eval()
    with torch.no_grad():
        model[0].weight[2] = 2.5 * model[0].weight[1]
        model[0].bias[2] = 2.5 * model[0].bias[1]
    x = torch.randn(16, 1, 6, 6)
    expected = model(x)
    assert compensate(model, "0", kept=[0, 1], calibration=x) == {2: 1}
    _prune(model, model[0], [2], x[:1])
    assert model[-1].in_features == 2 * 4 * 4
    assert torch.allclose(model(x), expected, atol=1e-5)


def test_removal_without_compensation_changes_the_output() -> None:
    model = _bn_duplicate_model(relu=True)
    x = torch.randn(8, 2, 6, 6)
    expected = model(x)
    _prune(model, model[0], [1], x[:1])
    assert not torch.allclose(model(x), expected, atol=1e-2)


def test_next_layer_tap_sees_a_repeat_that_the_layer_output_hides() -> None:
    model = _bn_duplicate_model(relu=True)
    group = _root_group(model, model[0], torch.randn(1, 2, 6, 6))
    calibration = torch.randn(16, 2, 6, 6)
    similarity = {
        tap: cosine_similarity(
            FunctionalityImportance(model, calibration=calibration, tap=tap).group_signatures(group)
        )[0, 1].item()
        for tap in ("next", "output")
    }
    assert similarity["next"] == pytest.approx(1.0, abs=1e-5)  # post-BN-ReLU: channel 1 = 3 x channel 0
    assert similarity["output"] == pytest.approx(-1.0, abs=1e-5)  # pre-BN: negated filter


def test_measured_sensitivity_follows_the_measured_loss_curve() -> None:
    """Scores keep the ranking's channel order (ties within a linear segment included); the top-w sums are the
    loss at width 0 (extended linearly) minus the measured loss at w, at every grid width."""
    from planner.importance.sensitivity import measured_scores

    measured = {2: 0.9, 4: 0.3, 6: 0.1, 8: 0.0}  # loss increase with the group cut to w of 8 channels
    ranking = np.array([0.5, 3.0, 1.0, 2.0, 0.1, 4.0, 0.2, 0.3])
    calls = []
    scores = measured_scores(lambda w: calls.append(w) or measured[w], ranking, grid=4)
    assert calls == [2, 4, 6]  # the full width costs nothing and is not measured
    order = np.argsort(-scores, kind="stable")
    assert list(order) == list(np.argsort(-ranking, kind="stable"))
    at_zero = 0.9 + (0.9 - 0.3) / 2 * 2  # slope of the first segment, 0.3 per channel, extended to width 0
    kept = np.concatenate([[0.0], np.cumsum(scores[order])])
    for w, loss in measured.items():
        assert kept[w] == pytest.approx(at_zero - loss, rel=1e-6)


def test_sensitivity_scores_measure_the_no_retraining_path() -> None:
    """`--importance sensitivity` measures each group's curve through compensation and BatchNorm re-estimation
    (planner.apply.calibration_loss, against the unpruned model's predictions for unlabelled data) on the even
    calibration inputs, ranking channels by their coupled group L2 norm; its joint loss (all groups cut) is measured the same way
    on the odd inputs."""
    from benchmarks.functionality import build_cnn
    from planner.apply import calibration_loss
    from planner.calibration import Calibration
    from planner.importance.sensitivity import measured_scores
    from planner.plan import group_width, prepare_module

    torch.manual_seed(0)
    model = build_cnn((8, 8, 16, 16)).eval()
    x = torch.randn(32, 1, 8, 8)
    prep = prepare_module(model, "cnn", (1, 8, 8), "sensitivity", Calibration(x, None, "test batch"))
    curves, selection = x[0::2], x[1::2]
    with torch.no_grad():
        y, y_selection = model(curves).argmax(dim=1), model(selection).argmax(dim=1)
    base = calibration_loss(model, [], curves, y, True)
    g = 2
    group = prep.groups[g]
    ranking = rank_channels(model, group.tp_group, "group-l2").double().numpy()
    expected = measured_scores(
        lambda w: calibration_loss(model, [group_width(group, w, ranking, 0.0)], curves, y, True) - base, ranking
    )
    assert prep.scores[g] == pytest.approx(expected, rel=1e-6)
    assert list(np.argsort(-prep.scores[g], kind="stable")) == list(np.argsort(-ranking, kind="stable"))
    widths = [4, 8, 8, 16]  # groups 0 (8 -> 4) and 2 (16 -> 8) cut together, their top-scoring channels kept
    cut = [group_width(grp, w, s, 0.0) for grp, w, s in zip(prep.groups, widths, prep.scores)]
    joint = calibration_loss(model, cut, selection, y_selection, True)
    assert prep.joint_loss(np.array(widths)) == pytest.approx(
        joint - calibration_loss(model, [], selection, y_selection, True), rel=1e-9
    )
