"""Compensation by merging: fold each pruned channel into a kept channel with the same function.

If pruned channel ``j`` does what kept channel ``i`` does, then what the next layer sees of ``j``
is approximately an affine copy of what it sees of ``i``: ``x_j ~ alpha * x_i + beta``, where
``x`` is the *consumer's input* (after BatchNorm, ReLU, pooling: whatever sits in between). The
consumer's weights for ``j`` are then added, scaled by ``alpha``, to those for ``i``, and the
constant ``beta`` goes into the consumer's bias, so the consumer's output is preserved up to the
fit's residual. ``alpha`` and ``beta`` come from a least-squares fit on a calibration batch, on
the current model, so compensating layers front to back accounts for earlier changes.

Approximations: the fit is linear in the consumer's input, so a ReLU between the layers makes
it exact only when ``j``'s post-ReLU response is an affine copy of ``i``'s (e.g. same filter up to
a positive scale, same BatchNorm threshold); ``beta`` is exact only away from zero padding. A
consumer without a bias gets one only when some ``beta`` is non-zero. Depthwise consumers have
nothing to merge into and are left alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch_pruning as tp
from torch import nn

from .resume import ConsumerInputs, consumer_inputs
from .slots import Slot, consumer_slots


def _responses(inputs: torch.Tensor, slot: Slot) -> dict[int, torch.Tensor]:
    """One flat response vector per root channel: all its input columns, samples and positions (a linear
    layer's token inputs [N, L, F] as N*L rows of F)."""
    if isinstance(slot.module, nn.Linear) and inputs.dim() > 2:
        inputs = inputs.flatten(0, -2)
    return {root: inputs[:, cols].transpose(0, 1).reshape(-1) for root, cols in slot.columns().items()}


def _nearest_partners(
    responses: list[dict[int, torch.Tensor]], kept: Sequence[int], pruned: Sequence[int]
) -> dict[int, int]:
    """For each pruned channel, the kept channel whose response explains most of its variance (max r^2)."""

    def centred(channels: Sequence[int]) -> torch.Tensor:
        rows = torch.stack([torch.cat([r[c] for r in responses]) for c in channels]).double()
        rows = rows - rows.mean(dim=1, keepdim=True)
        return rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)

    r_squared = (centred(pruned) @ centred(kept).T) ** 2
    return {j: kept[int(best)] for j, best in zip(pruned, r_squared.argmax(dim=1))}


def _affine_fit(target: torch.Tensor, source: torch.Tensor, intercept: bool) -> tuple[float, float]:
    """Least-squares ``alpha, beta`` with ``target ~ alpha * source + beta``.

    ``beta`` is 0 without ``intercept`` and when negligible (below 1e-6 of the target's range).
    """
    source, target = source.double(), target.double()
    source_mean, target_mean = (source.mean(), target.mean()) if intercept else (0.0, 0.0)
    centred = source - source_mean
    energy = centred.square().sum()
    alpha = float((centred * (target - target_mean)).sum() / energy) if energy > 1e-12 else 0.0
    beta = float(target_mean - alpha * source_mean)
    return alpha, beta if abs(beta) > 1e-6 * float(target.abs().max()) else 0.0


def _merge(consumer: nn.Module, columns: dict[int, list[int]], j: int, i: int, alpha: float, beta: float) -> None:
    """Add ``alpha`` times ``j``'s input weights to ``i``'s and ``beta`` times their sum to the bias."""
    weight = consumer.weight
    for col_j, col_i in zip(columns[j], columns[i]):
        weight[:, col_i] += alpha * weight[:, col_j]
        if beta == 0.0:
            continue
        shift = beta * weight[:, col_j].reshape(weight.shape[0], -1).sum(dim=1)
        if consumer.bias is None:
            consumer.bias = nn.Parameter(torch.zeros_like(shift))
        consumer.bias += shift


@torch.enable_grad()
def _full_group(model: nn.Module, name: str, example: torch.Tensor) -> tp.dependency.Group:
    """The output-channel group of layer ``name`` covering all of its channels."""
    module = model.get_submodule(name)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    if isinstance(module, nn.Linear):
        return graph.get_pruning_group(module, tp.prune_linear_out_channels, list(range(module.out_features)))
    return graph.get_pruning_group(module, tp.prune_conv_out_channels, list(range(module.out_channels)))


@torch.no_grad()
def compensate(
    model: nn.Module,
    group: tp.dependency.Group | str,
    kept: Sequence[int],
    calibration: torch.Tensor,
    partners: Mapping[int, int] | None = None,
    bias: bool = True,
    inputs_of: ConsumerInputs | None = None,
) -> dict[int, int]:
    """Fold every channel of ``group`` not in ``kept`` into a kept partner, in the consumer layers.

    Call before removing the channels. ``group`` is a Torch-Pruning group over all channels of
    its root (``idxs`` = root indices) or the name of a conv/linear layer. ``partners`` maps a
    pruned channel to its kept partner (e.g. its cluster's representative); by default each
    pruned channel takes the kept channel whose consumer-input response explains most of its
    variance. ``bias=False`` fits ``x_j ~ alpha * x_i`` (no constant, no new bias). ``inputs_of``: where the
    consumers' inputs come from when groups are compensated one after another (planner.importance.resume;
    default: a full forward pass). Returns the partner map used. Only the consumers' weights and biases
    change; the channels stay in place.
    """
    if isinstance(group, str):
        group = _full_group(model, group, calibration[:1])
    width, consumers = consumer_slots(group)
    kept = sorted({int(k) for k in kept})
    pruned = sorted(set(range(width)) - set(kept))
    if not pruned or not kept or not consumers:
        return {}
    modules = [c.module for c in consumers]
    if inputs_of is None:
        inputs = consumer_inputs(model, modules, calibration)
    else:
        inputs = inputs_of(modules, changing=[item.dep.target.module for item in group])
    responses = [_responses(inputs[c.module], c) for c in consumers]
    if partners is None:
        partners = _nearest_partners(responses, kept, pruned)
    for consumer, response in zip(consumers, responses):
        columns = consumer.columns()
        for j in pruned:
            i = partners[j]
            _merge(consumer.module, columns, j, i, *_affine_fit(response[j], response[i], bias))
    return dict(partners)
