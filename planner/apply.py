"""Apply a plan: remove the pruned channels from the real PyTorch model, check it, and predict it again."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

import gpusim
from gpusim.atomic_write import write_atomic
from gpusim.errors import WavecutError
from planner.calibration import load_calibration
from planner.groups import dependency_graph, groups_of
from planner.heads import prune_heads
from planner.importance import compensate
from planner.importance.resume import ConsumerInputs
from planner.network import Network
from planner.plan import fingerprint, load_weights_model
from planner.plan_model import GroupWidth, Plan

# How closely the pruned model's predicted latency must match the plan's (both are one gpusim call on
# the same ops; anything but rounding is a planner bug).
MATCH_TOLERANCE = 1e-6


class PlanMismatch(WavecutError):
    """The pruned model does not predict the latency its plan claims (a planner bug, reported in one line)."""


@dataclass(frozen=True)
class Applied:
    """A pruned model, its output shape (unchanged) and its predicted latency (equal to the plan's)."""

    model: nn.Module
    output_shape: tuple[int, ...]
    predicted_us: float
    parameters_before: int
    parameters_after: int
    calibration: str = "synthetic"  # where the calibration batch came from
    compensated: bool = False
    bn_recalibrated: int = 0  # BatchNorm layers whose statistics were re-estimated


def check_plan(plan: Plan, model: nn.Module, weights_sha256: str | None, model_spec: str | None = None) -> None:
    """Refuse (one line) a plan made for another model, weights or GPU spec file; `model_spec` names the model
    checked (default: the plan's)."""
    if fingerprint(model) != plan.model_fingerprint:
        raise WavecutError(
            f"plan was made for another model: {plan.model!r} (fingerprint {plan.model_fingerprint}), "
            f"{(model_spec or plan.model)!r} gives {fingerprint(model)}"
        )
    if weights_sha256 != plan.weights_sha256:
        raise WavecutError(
            "plan ranked channels on other weights: give the --weights file the plan was made with "
            f"({plan.weights or 'none: the seeded initial weights'})"
        )
    spec = plan_spec(plan)
    if spec.content_hash != plan.gpu_spec_hash:
        raise WavecutError(
            f"plan was made with another version of the GPU spec {plan.gpu_spec} "
            f"(hash {plan.gpu_spec_hash}, now {spec.content_hash}); plan again"
        )


def plan_spec(plan: Plan) -> gpusim.GpuSpec:
    """The GPU spec a plan names: its file where that still exists, else its name."""
    return gpusim.load_spec(plan.gpu_spec if Path(plan.gpu_spec).exists() else plan.gpu)


def prune(
    model: nn.Module,
    planned_groups: Sequence[GroupWidth],
    example: torch.Tensor,
    calibration: torch.Tensor | None = None,
) -> None:
    """Remove every planned group's unkept channels in place (Torch-Pruning propagates them to the coupled layers).

    With a `calibration` batch, each removed channel is first folded into the kept channel that best
    explains its response in the consumer layers (planner.importance.compensate, refitted group by group on
    the model as pruned so far): what lets a pruned model work with little or no retraining."""
    graph, classifier = dependency_graph(model, example)
    groups = {g.name: g for g in groups_of(model, graph, classifier)}
    modules = dict(model.named_modules())
    heads: list[GroupWidth] = []  # head groups, pruned once Torch-Pruning is done with the graph (planner.heads)
    inputs_of = ConsumerInputs(model, calibration) if calibration is not None else None
    for planned in planned_groups:
        group = groups.get(planned.name)
        if group is None or group.full_width != planned.full_width:
            raise WavecutError(
                f"plan was made for another model: group {planned.name!r} "
                f"({planned.full_width} channels) is not in this one"
            )
        if planned.width == planned.full_width:
            continue
        if group.head_dim:
            heads.append(planned)
            continue
        module = modules[planned.name]
        removed = sorted(set(range(planned.full_width)) - set(planned.kept))
        if calibration is not None and group.channel_groups == 1:  # a grouped conv's consumer weights are per
            # conv group: a removed channel cannot be folded into a kept one of another group
            full = graph.get_pruning_group(module, _out_pruner(module), list(range(planned.full_width)))
            compensate(model, full, planned.kept, calibration, inputs_of=inputs_of)
        group_removed = graph.get_pruning_group(module, _out_pruner(module), removed)
        group_removed.prune()
        if inputs_of is not None:
            inputs_of.changed(item.dep.target.module for item in group_removed)
    for planned in heads:
        prune_heads(model, planned.name, planned.kept)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, calibration: torch.Tensor, batch_size: int = 32) -> int:
    """Re-estimate every BatchNorm layer's running mean and variance on `calibration` (cumulative average over
    its batches; the weights and every other layer stay as they are, dropout stays off). Returns the number
    of BatchNorm layers."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch counts the same
        m.train()
    try:
        for batch in calibration.split(batch_size):
            model(batch)
    finally:
        model.eval()
    return len(norms)


def calibration_loss(
    model: nn.Module,
    planned_groups: Sequence[GroupWidth],
    calibration: torch.Tensor,
    targets: torch.Tensor,
    recalibrate: bool,
) -> float:
    """Cross-entropy against `targets` on `calibration` of a copy of `model` pruned by the no-retraining path
    (`prune` with compensation, then, where `recalibrate`, BatchNorm re-estimated on `calibration`), as
    `wavecut apply` leaves it; `model` itself is untouched."""
    pruned = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prune(pruned, planned_groups, torch.zeros(1, *calibration.shape[1:]), calibration)
    if recalibrate:
        recalibrate_batchnorm(pruned, calibration)
    pruned.eval()
    with torch.no_grad():
        return float(F.cross_entropy(pruned(calibration), targets))


def _out_pruner(module: nn.Module):
    if isinstance(module, nn.Linear):
        return tp.prune_linear_out_channels
    if module.groups > 1 and module.groups == module.out_channels:
        return tp.prune_depthwise_conv_out_channels
    return tp.prune_conv_out_channels


def apply_plan(
    plan: Plan,
    weights: str | None = None,
    out: str | Path | None = None,
    model_spec: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    calibration_data: str | None = None,
    compensation: bool = True,
    bn_recalibration: bool | None = None,
    seed: int = 0,
) -> Applied:
    """Prune the plan's model (or `model_spec`, which must be the same architecture), check a forward pass keeps
    the output shape, save it to `out`, and predict its latency with the plan's GPU, batch, dtype and mode.

    The no-retraining path: with `compensation`, removed channels are folded into kept partners first; with
    `bn_recalibration` (default: when `calibration_data` is given; synthetic statistics would replace real
    ones), BatchNorm statistics are then re-estimated. Both use the calibration batch (planner.calibration:
    images, a .pt tensor, or the synthetic default from `seed`); the result is deterministic for a seed."""
    if input_shape is not None and list(input_shape) != plan.input_shape:
        raise WavecutError(
            f"plan was made for input {'x'.join(map(str, plan.input_shape))}, not {'x'.join(map(str, input_shape))}"
        )
    model, digest = load_weights_model(model_spec or plan.model, weights)
    check_plan(plan, model, digest, model_spec)
    calibration = load_calibration(calibration_data, plan.input_shape, seed=seed)
    recalibrate = calibration_data is not None if bn_recalibration is None else bn_recalibration
    example = torch.zeros(1, *plan.input_shape)
    with torch.no_grad():
        shape_before = tuple(model(example).shape)
    count_before = sum(p.numel() for p in model.parameters())
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prune(model, plan.groups, example, calibration.x if compensation else None)
    norms = recalibrate_batchnorm(model, calibration.x) if recalibrate else 0
    with torch.no_grad():
        shape_after = tuple(model(example).shape)
    if shape_after != shape_before:
        raise WavecutError(f"pruned model's output shape {shape_after} differs from {shape_before}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predicted = (
            Network.from_model(model, tuple(plan.input_shape))
            .predict(plan_spec(plan), plan.batch, plan.dtype, plan.mode)
            .total_us
        )
    if out is not None:
        write_atomic(out, lambda tmp: torch.save(model, tmp))
    return Applied(
        model,
        shape_after,
        predicted,
        count_before,
        sum(p.numel() for p in model.parameters()),
        calibration.source,
        compensation,
        norms,
    )


def verify_plan(plan: Plan, weights: str | None = None) -> float:
    """Prune a fresh copy of the plan's model and predict it; PlanMismatch unless it equals the plan's latency.

    What `wavecut plan` runs before writing a plan, so no plan claims a latency (or a budget) its
    pruned model does not have."""
    predicted = apply_plan(
        plan, weights, compensation=False, bn_recalibration=False
    ).predicted_us  # widths alone set it
    if abs(predicted - plan.planned_latency_us) > MATCH_TOLERANCE * plan.planned_latency_us:
        raise PlanMismatch(
            f"internal check failed: the pruned {plan.model} predicts {predicted:.1f} us, the plan claims "
            f"{plan.planned_latency_us:.1f} us; no plan written, please report this (or pass --no-check)"
        )
    return predicted
