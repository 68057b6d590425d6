"""First-order Taylor importance: the loss change that removing a channel causes, estimated on calibration data.

Removing channel ``c`` of a group sets the tensor the next layers read to zero in that channel. Where the
group's channels pass through normalisation layers (BatchNorm, LayerNorm, GroupNorm: ``y = gamma * x_hat +
beta``), zeroing ``gamma_c`` and ``beta_c`` does exactly that, so the first-order loss change is
``gamma_c * dL/dgamma_c + beta_c * dL/dbeta_c``, summed over the group's norm layers (a residual stream has
one per block). A group without a norm layer zeroes its producers' filter and bias instead
(``sum(w * dL/dw) + b * dL/db`` per output channel). Per calibration batch the signed sum is taken and its
absolute value accumulated over batches (Molchanov et al. 2019, HALP; Torch-Pruning's ``TaylorImportance``
with ``multivariable=True`` sums over all of a group's parameters instead, which counts a channel once per
coupled layer). The scores are in units of loss and comparable across layers and groups: what the planner
needs to trade a channel of a 64-wide stem against one of a 2048-wide stage.

The loss is the cross-entropy against ``labels`` when given, else against the model's own predictions on
the unpruned model (pseudo-labels, so unlabelled or synthetic calibration data works).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn
from torch_pruning.pruner import function

from .slots import _root_idxs

NORM_HANDLERS = (
    function.prune_batchnorm_out_channels,
    function.prune_layernorm_out_channels,
    function.prune_groupnorm_out_channels,
)
MICRO_BATCH = 1  # samples per backward pass: the activations a backward holds scale with it (docs/hardening.md)
PRODUCER_HANDLERS = (
    function.prune_conv_out_channels,
    function.prune_depthwise_conv_out_channels,
    function.prune_linear_out_channels,
)


def _per_channel(param: torch.Tensor) -> torch.Tensor:
    """``sum(theta * dL/dtheta)`` per output channel (first dimension) of a parameter with a gradient."""
    if param.grad is None:
        return torch.zeros(param.shape[0])
    return (param.detach() * param.grad.detach()).reshape(param.shape[0], -1).sum(dim=1).double().cpu()


class TaylorImportance(tp.importance.Importance):
    """|first-order loss change| of removing each channel, summed over calibration batches (see the module doc).

    The gradients are computed once, on the first call, for the model as it is then (eval mode: BatchNorm
    uses its running statistics), ``batch_size`` samples at a time. Each batch's gradient is accumulated over
    backward passes of ``micro_batch`` samples (eval mode has no cross-sample term and the loss is a sum, so
    the gradient is the same; only one micro-batch's activations are held at a time)."""

    def __init__(
        self,
        model: nn.Module,
        calibration: torch.Tensor,
        labels: torch.Tensor | None = None,
        batch_size: int = 32,
        micro_batch: int = MICRO_BATCH,
    ) -> None:
        self.model = model
        self.calibration = calibration
        self.labels = labels
        self.batch_size = batch_size
        self.micro_batch = micro_batch
        self._terms: dict[torch.Tensor, list[torch.Tensor]] | None = None  # parameter -> per-batch per-channel

    def _compute(self) -> dict[torch.Tensor, list[torch.Tensor]]:
        model = self.model
        was_training = model.training
        model.eval()
        params = [p for p in model.parameters()]
        saved = [p.requires_grad for p in params]
        terms: dict[torch.Tensor, list[torch.Tensor]] = {p: [] for p in params}
        try:
            for p in params:
                p.requires_grad_(True)
            with torch.no_grad():
                targets = self.labels if self.labels is not None else model(self.calibration).argmax(dim=1)
            for x, y in zip(self.calibration.split(self.batch_size), targets.split(self.batch_size)):
                model.zero_grad(set_to_none=True)
                for xm, ym in zip(x.split(self.micro_batch), y.split(self.micro_batch)):
                    with torch.enable_grad():
                        F.cross_entropy(model(xm), ym, reduction="sum").backward()
                for p in params:
                    terms[p].append(_per_channel(p))
        finally:
            model.zero_grad(set_to_none=True)
            for p, flag in zip(params, saved):
                p.requires_grad_(flag)
            model.train(was_training)
        return terms

    def parameter_terms(self) -> dict[torch.Tensor, list[torch.Tensor]]:
        """Per parameter, per calibration batch: ``sum(theta * dL/dtheta)`` per output row (computed once)."""
        if self._terms is None:
            self._terms = self._compute()
        return self._terms

    @torch.no_grad()
    def __call__(self, group: tp.dependency.Group) -> torch.Tensor | None:
        """One score per root channel (loss units, higher = keep), or ``None`` for a group without producers."""
        self.parameter_terms()
        root = {r: i for i, r in enumerate(_root_idxs(group[0]))}
        norms = [item for item in group if item.dep.handler in NORM_HANDLERS]
        producers = [item for item in group if item.dep.handler in PRODUCER_HANDLERS]
        if not producers:
            return None
        batches = len(self.calibration.split(self.batch_size))
        signed = torch.zeros(batches, len(root), dtype=torch.float64)
        for item in norms or producers:
            module = item.dep.target.module
            positions = torch.tensor([root[r] for r in _root_idxs(item)])
            idxs = torch.tensor([int(i) for i in item.idxs])
            for name in ("weight", "bias"):
                param = getattr(module, name, None)
                if isinstance(param, torch.Tensor) and param in self._terms:
                    for b, term in enumerate(self._terms[param]):
                        signed[b].index_add_(0, positions, term[idxs])
        return signed.abs().sum(dim=0).float()
