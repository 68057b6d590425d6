"""Network: trace a model once, then predict it on many GPUs, batch sizes, dtypes, modes and channel widths cheaply."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import networkx as nx
import numpy as np
import torch
from torch import nn

import gpusim
from gpusim.eager import eager_step_us, precision_warnings, predict_mixed, resolve_precision
from gpusim.errors import WavecutError
from gpusim.predict import launch_overhead_us
from planner.candidates import WidthModel
from planner.defaults import DEFAULT_BATCH, DEFAULT_DTYPE, DEFAULT_GPU, DEFAULT_INPUT, DEFAULT_MODE, check_mode
from planner.groups import ChannelGroup
from planner.lowering import LoweredOp, lower, with_batch, with_precision
from planner.models import load_model
from planner.trace import trace


class PrecisionWarning(UserWarning):
    """A precision the GPU has no tensor cores for (priced at the rate it really runs at)."""


@dataclass(frozen=True)
class Setting:
    """Where a network runs: GPU (name or spec), batch size, dtype and mode (see Network.predict)."""

    gpu: str | gpusim.GpuSpec = DEFAULT_GPU
    batch: int = DEFAULT_BATCH
    dtype: str = DEFAULT_DTYPE
    mode: str = DEFAULT_MODE


@dataclass(frozen=True)
class Layer:
    """One predicted kernel launch of a network, in run order.

    tail_waste_us: time the launch spends in its partly filled last wave, times the idle fraction
    of that wave. gpusim reports only the launch total, so one wave is taken as the launch's busy
    time (its time less the launch overhead) divided by its waves: (time - overhead) * (1 - tail_fill) / waves
    (gpusim.KernelLaunch.idle_tail_us). It is 0 when the last wave is full, and for streaming kernels (gpusim.KernelLaunch.streaming), whose last
    wave costs in proportion to its CTAs.
    """

    name: str
    op: str
    shape: tuple[int, ...]
    kernel: str
    grid: int
    ctas_per_sm: int
    waves: int
    tail_fill: float
    latency_us: float
    tail_waste_us: float
    fused: tuple[str, ...]


@dataclass(frozen=True)
class NetworkPrediction:
    """Per-layer launches, the total GPU time, FLOPs (all ops) and MACs (GEMM-like op kinds: conv, linear,
    bmm, sdpa), and the tail waste.

    step_us: wall time of one forward as the host sees it (eager: the GPU idles while the host issues
    ops more slowly than they run, gpusim.eager.eager_step_us; fused: total_us)."""

    model: str
    gpu: str
    dtype: str
    batch: int
    mode: str
    layers: list[Layer]
    total_us: float
    flops: int
    macs: int
    tail_waste_us: float
    unmapped: list[str]
    step_us: float = 0.0

    def to_dict(self) -> dict:
        """Plain dict for JSON output; each layer also carries its share of the total."""
        data = asdict(self)
        for layer in data["layers"]:
            layer["share"] = layer["latency_us"] / self.total_us if self.total_us else 0.0
        return data


class Network:
    """A traced model: its op graph (a networkx DiGraph, see planner.trace.trace) and its ops per mode."""

    def __init__(self, graph: nx.DiGraph, name: str = "model") -> None:
        self.graph = graph
        self.name = name
        self._lowered: dict[str, list[LoweredOp]] = {}

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        example: torch.Tensor | Sequence[int] = DEFAULT_INPUT,
        name: str | None = None,
        strict: bool = False,
    ) -> Network:
        """Trace `model` (in eval mode) on `example`: a tensor or an input shape without the batch."""
        return cls(trace(model.eval(), example, strict), name or type(model).__name__)

    @classmethod
    def load(cls, spec: str, input_shape: Sequence[int] = DEFAULT_INPUT, strict: bool = False) -> Network:
        """Load a model by torchvision name, `package.module:factory` or saved file, and trace it."""
        return cls.from_model(load_model(spec), input_shape, spec, strict)

    @property
    def unmapped(self) -> list[str]:
        """Names of the nodes that have no gpusim equivalent (priced as memory-bound ops)."""
        return [n for n, unmapped in self.graph.nodes(data="unmapped") if unmapped]

    def lowered(self, mode: str = DEFAULT_MODE) -> list[LoweredOp]:
        """Per-sample ops in run order for `mode` (computed once per mode)."""
        if check_mode(mode) not in self._lowered:
            self._lowered[mode] = lower(self.graph, mode)
        return self._lowered[mode]

    def ops(self, batch: int = DEFAULT_BATCH, mode: str = DEFAULT_MODE) -> list[gpusim.Op]:
        """The gpusim ops for `batch` samples in `mode`, without re-tracing."""
        if batch < 1:
            raise WavecutError(f"--batch: must be at least 1, got {batch}")
        return [with_batch(low.op, batch) for low in self.lowered(mode)]

    def predict(
        self,
        gpu: str | gpusim.GpuSpec = DEFAULT_GPU,
        batch: int = DEFAULT_BATCH,
        dtype: str = DEFAULT_DTYPE,
        mode: str = DEFAULT_MODE,
        allow_tf32_matmul: bool = False,
    ) -> NetworkPrediction:
        """Predict every launch of the network on `gpu` (one vectorised gpusim call per dtype used).

        dtype is a precision of gpusim.eager (fp32 = PyTorch's defaults, amp-fp16 = autocast, ...); a
        GPU without tensor cores for it is priced at its real rate, with a PrecisionWarning."""
        spec = gpusim.load_spec(gpu)
        precision = resolve_precision(dtype, spec, allow_tf32_matmul)
        for line in precision_warnings(precision, spec):
            warnings.warn(line, PrecisionWarning, stacklevel=2)
        if batch < 1:
            raise WavecutError(f"--batch: must be at least 1, got {batch}")
        lowered = with_precision(self.graph, self.lowered(mode), precision, mode)
        ops = [with_batch(low.op, batch) if low.per_sample else low.op for low in lowered]
        pred = predict_mixed(ops, [low.dtype for low in lowered], spec)
        overhead = launch_overhead_us(spec)
        layers = [_layer(k, lowered[k.op_index], batch, overhead) for k in pred.launches]
        eager = mode == "eager"
        return NetworkPrediction(
            model=self.name,
            gpu=pred.gpu,
            dtype=dtype,
            batch=batch,
            mode=mode,
            layers=layers,
            total_us=pred.total_us,
            flops=sum(op.flops for op in ops),
            macs=sum(op.flops for op in ops if op.gemm) // 2,
            tail_waste_us=sum(layer.tail_waste_us for layer in layers),
            unmapped=self.unmapped,
            step_us=eager_step_us(pred.op_times_us, pred.host_overhead_us) if eager else pred.total_us,
        )

    def predict_many(
        self,
        settings: Sequence[Setting] = (Setting(),),
        widths: np.ndarray | Sequence[Sequence[int]] | None = None,
        groups: Sequence[ChannelGroup] = (),
    ) -> np.ndarray:
        """Total latency (us) at every setting (rows) and width vector (columns) in one vectorised pass.

        `widths` has one column per channel group of `groups` (planner.groups.find_groups order; locked
        groups at full width); without it, one column at full width. Per setting the distinct op shapes
        over all width vectors are priced once, in one gpusim call per kernel family, so the result
        equals `predict(...).total_us` (widths at full) and the planner's `WidthModel.predict` per vector."""
        groups = list(groups)
        full = np.array([g.full_width for g in groups], dtype=np.int64)
        w = full[None, :] if widths is None else np.asarray(widths, dtype=np.int64)
        _check_widths(w, groups, full)
        totals = np.empty((len(settings), len(w)), dtype=np.float64)
        for row, s in enumerate(settings):
            self.ops(s.batch, s.mode)  # checks the batch and mode
            model = WidthModel(self, groups, s.gpu, s.batch, s.dtype, s.mode)
            totals[row] = model.op_time_matrix(w).sum(axis=1)
        return totals


def _check_widths(widths: np.ndarray, groups: list[ChannelGroup], full: np.ndarray) -> None:
    """One-line errors for width vectors that do not fit the groups."""
    if widths.ndim != 2 or widths.shape[1] != len(groups):
        raise WavecutError(f"widths: expected one column per channel group ({len(groups)}), got shape {widths.shape}")
    bad = np.argwhere((widths < 1) | (widths > full))
    if len(bad):
        r, g = bad[0]
        raise WavecutError(f"widths: row {r}, group {groups[g].name}: {widths[r, g]} is not in 1..{full[g]}")
    for g, group in enumerate(groups):
        if group.locked and np.any(widths[:, g] != full[g]):
            raise WavecutError(f"widths: group {group.name} is locked at {full[g]} ({group.locked})")
        off = np.flatnonzero(widths[:, g] % group.channel_groups)
        if len(off):
            raise WavecutError(
                f"widths: row {off[0]}, group {group.name}: {widths[off[0], g]} is not a multiple of "
                f"{group.channel_groups}, the group count of the grouped convs it feeds or leaves"
            )


def _layer(k: gpusim.KernelLaunch, low: LoweredOp, batch: int, overhead: float) -> Layer:
    return Layer(
        name=k.op_name,
        op=k.op_kind,
        shape=(low.shape[0] * batch, *low.shape[1:]) if low.per_sample else low.shape,
        kernel=k.kernel,
        grid=k.grid,
        ctas_per_sm=k.ctas_per_sm,
        waves=k.waves,
        tail_fill=k.tail_fill,
        latency_us=k.time_us,
        tail_waste_us=k.idle_tail_us(overhead),
        fused=low.fused,
    )
