"""Torch-Pruning compatible importance criteria and the planner's ``rank_channels`` entry point.

A criterion is called on a ``torch_pruning`` dependency group (``group[0]`` is the root; every
item has ``.dep.target.module``, ``.dep.handler``, ``.idxs`` and ``.root_idxs``) and returns one
score per channel of the root, higher = keep. Coupled groups (e.g. convolutions joined by a
residual add) are handled by combining every conv/linear layer whose output channels the group
prunes (or, for response signatures read at the next layer, every layer that reads them).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Literal

import torch
import torch_pruning as tp
from torch import nn

from .magnitude import filter_l1_norms
from .redundancy import RepresentativeRule, redundancy_scores
from .signatures import SignatureKind, compute_signatures, infer_input_shape, prunable_modules, synthetic_batch
from .slots import consumer_slots, producer_slots
from .taylor import TaylorImportance

Tap = Literal["next", "output"]


class MagnitudeImportance(tp.importance.Importance):
    """L1 norm of each channel's filters, summed over the coupled conv/linear layers of the group."""

    @torch.no_grad()
    def __call__(self, group: tp.dependency.Group) -> torch.Tensor | None:
        """One L1 score per root channel, or ``None`` for a group without conv/linear outputs."""
        width, slots = producer_slots(group)
        if not slots:
            return None
        scores = torch.zeros(width)
        for slot in slots:
            scores.index_add_(0, torch.tensor(slot.positions), filter_l1_norms(slot.module).cpu()[slot.idxs])
        return scores


class FunctionalityImportance(tp.importance.Importance):
    """Functionality-oriented importance (Qin et al., arXiv 1810.07322 / 1811.02639).

    Channels whose signature repeats another's are ranked lowest; one representative per cluster
    (the most contributing by filter L1 norm, or the most central) is kept. Signatures of a
    coupled group are the concatenation of its layers' signatures. Signatures are cached and
    recomputed only when the model's parameters or buffers change (in place or in shape); the
    response kind computes every conv/linear layer in one forward pass.

    ``tap`` says where the response signature is read: ``"next"`` (default) at the input of the
    layers that consume the group, i.e. after BatchNorm, activation and pooling, which is what the
    next layer sees (falling back to ``"output"`` for a group nothing consumes); ``"output"`` at
    the pruned layer's own output. The actmax signature always maximises the layer's own output
    (behind a ReLU, an inactive channel would have no gradient).

    Without ``calibration`` the response signature uses a deterministic synthetic batch of smooth
    random images (shape from ``input_shape`` or inferred from the first layer). ``keep_ratio``
    clusters each group into exactly ``round(width * keep_ratio)`` clusters (the target width);
    otherwise ``threshold`` (cosine distance) decides which channels count as repeats.
    """

    def __init__(
        self,
        model: nn.Module,
        signature: SignatureKind = "response",
        calibration: torch.Tensor | None = None,
        input_shape: Sequence[int] | None = None,
        threshold: float | None = 0.5,
        keep_ratio: float | None = None,
        representative: RepresentativeRule = "contribution",
        progress: bool = True,
        tap: Tap = "next",
    ) -> None:
        self.model = model
        self.signature = signature
        self.calibration = calibration
        self.input_shape = input_shape
        self.threshold = threshold
        self.keep_ratio = keep_ratio
        self.representative = representative
        self.progress = progress
        self.tap = tap
        self._cache: dict[tuple[nn.Module, str], torch.Tensor] = {}
        self._fingerprint: tuple = ()

    def _model_fingerprint(self) -> tuple:
        """Identity, version counter and shape of every parameter and buffer."""
        tensors = [*self.model.parameters(), *self.model.buffers()]
        return tuple((t.data_ptr(), t._version, tuple(t.shape)) for t in tensors)

    def signatures(
        self, modules: Sequence[nn.Module], at: Literal["output", "input"] = "output"
    ) -> dict[nn.Module, torch.Tensor]:
        """Cached signature matrix of each module's output (or input) channels, computing what is missing or stale."""
        fingerprint = self._model_fingerprint()
        if fingerprint != self._fingerprint:
            self._cache.clear()
            self._fingerprint = fingerprint
        if any((m, at) not in self._cache for m in modules):
            to_compute = prunable_modules(self.model) if self.signature == "response" else modules
            computed = compute_signatures(
                self.model, to_compute, self.signature, self.calibration, self.input_shape, self.progress, at
            )
            self._cache.update({(m, at): rows for m, rows in computed.items()})
        return {m: self._cache[m, at] for m in modules}

    def group_signatures(self, group: tp.dependency.Group) -> torch.Tensor | None:
        """Unit-norm signature per root channel: the group's layer signatures side by side."""
        width, slots = consumer_slots(group)
        at: Literal["output", "input"] = "input"
        if self.signature != "response" or self.tap == "output" or not slots:
            (width, slots), at = producer_slots(group), "output"
        if not slots:
            return None
        per_module = self.signatures([slot.module for slot in slots], at)
        blocks = []
        for slot in slots:
            columns = slot.columns()
            rows = per_module[slot.module]
            block = torch.zeros(width, len(next(iter(columns.values()))) * rows.shape[1])
            for position, idxs in columns.items():
                block[position] = rows[idxs].flatten()
            blocks.append(block)
        joined = torch.cat(blocks, dim=1)
        return joined / joined.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def __call__(self, group: tp.dependency.Group) -> torch.Tensor | None:
        """One score in ``(0, 1]`` per root channel (higher = keep), or ``None`` without conv/linear outputs."""
        signatures = self.group_signatures(group)
        if signatures is None:
            return None
        width = signatures.shape[0]
        n_clusters = None if self.keep_ratio is None else min(width, max(1, round(width * self.keep_ratio)))
        contribution = MagnitudeImportance()(group)
        return redundancy_scores(signatures, contribution, self.threshold, n_clusters, self.representative)


_criteria: weakref.WeakKeyDictionary[nn.Module, dict[str, FunctionalityImportance]] = weakref.WeakKeyDictionary()


def _functionality_for(
    model: nn.Module, signature: SignatureKind, calibration: torch.Tensor | None
) -> FunctionalityImportance:
    """A per-model, per-signature criterion reused while the calibration batch is the same object."""
    per_model = _criteria.setdefault(model, {})
    criterion = per_model.get(signature)
    if criterion is None or criterion.calibration is not calibration:
        criterion = FunctionalityImportance(model, signature, calibration)
        per_model[signature] = criterion
    return criterion


_taylor: weakref.WeakKeyDictionary[nn.Module, TaylorImportance] = weakref.WeakKeyDictionary()


def taylor_for(model: nn.Module, calibration: torch.Tensor, labels: torch.Tensor | None = None) -> TaylorImportance:
    """A per-model Taylor criterion (gradients computed once) reused while the calibration batch is the same."""
    criterion = _taylor.get(model)
    if criterion is None or criterion.calibration is not calibration or criterion.labels is not labels:
        criterion = TaylorImportance(model, calibration, labels)
        _taylor[model] = criterion
    return criterion


def rank_channels(
    model: nn.Module,
    group: tp.dependency.Group,
    method: Literal["magnitude", "group-l2", "functionality", "taylor"] = "magnitude",
    signature: SignatureKind = "response",
    calibration: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """One importance score per channel of a Torch-Pruning group (higher = keep).

    ``method="magnitude"`` is the L1 norm of the channel's filters (:class:`MagnitudeImportance`);
    ``method="group-l2"`` is Torch-Pruning's default ``GroupMagnitudeImportance(p=2)``: the L2 norm over
    every coupled parameter slice of the channel (its filters, its BatchNorm scale, the consumers' input
    weights), which sees what BatchNorm does to a filter whose own scale it normalises away.

    ``method="taylor"`` is the first-order loss change of removing each channel on ``calibration``
    (:class:`TaylorImportance`, against ``labels`` or the model's own predictions), comparable across groups.

    ``method="functionality"`` ranks repeated functionality lowest (see
    :class:`FunctionalityImportance`); its signatures are cached per model, so ranking every
    group of a network costs one forward pass for ``signature="response"``. Without
    ``calibration`` a deterministic synthetic batch of smooth random images is used.
    """
    if method == "magnitude":
        scores = MagnitudeImportance()(group)
    elif method == "group-l2":
        scores = tp.importance.GroupMagnitudeImportance(p=2)(group)
    elif method == "functionality":
        scores = _functionality_for(model, signature, calibration)(group)
    elif method == "taylor":
        if calibration is None:
            calibration = synthetic_batch(infer_input_shape(model))
        scores = taylor_for(model, calibration, labels)(group)
    else:
        raise ValueError(f"unknown method {method!r}; use 'magnitude', 'group-l2', 'functionality' or 'taylor'")
    if scores is None:
        raise ValueError("group prunes no conv/linear output channels")
    return scores
