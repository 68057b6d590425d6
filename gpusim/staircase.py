"""Latency as a function of one dimension of one op: the staircase, and the right edges of its steps."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from gpusim.errors import OpError
from gpusim.ops import Op
from gpusim.predict import predict
from gpusim.spec import GpuSpec


@dataclass(frozen=True)
class StairPoint:
    """One point of a sweep: the swept value, latency and the main kernel's launch."""

    value: int
    latency_us: float
    kernel: str
    grid: int
    ctas_per_sm: int
    waves: int
    tail_fill: float


def sweep(
    template: Op, field: str | tuple[str, ...], values: Sequence[int], spec: GpuSpec | str, dtype: str = "fp16"
) -> list[StairPoint]:
    """Predict `template` with `field` (or several fields together) set to each of `values`, in one engine call."""
    fields = (field,) if isinstance(field, str) else field
    known = {f.name for f in dataclasses.fields(template)} - {"name"}
    for f in fields:
        if f not in known:
            raise OpError(f"cannot sweep {f!r} of {template.kind}; allowed: {', '.join(sorted(known))}")
    ops = [dataclasses.replace(template, **{f: int(v) for f in fields}) for v in values]
    pred = predict(ops, spec, dtype)
    main = pred.main_launches()
    return [
        StairPoint(
            int(v),
            float(pred.op_times_us[i]),
            main[i].kernel,
            main[i].grid,
            main[i].ctas_per_sm,
            main[i].waves,
            main[i].tail_fill,
        )
        for i, v in enumerate(values)
    ]


def step_edges(points: Sequence[StairPoint], tolerance: float = 1e-6) -> list[StairPoint]:
    """The right edge of each step: points whose latency is lower than every larger value's.

    These are the widths worth keeping: the most channels for their latency."""
    edges: list[StairPoint] = []
    best_after = float("inf")
    for p in sorted(points, key=lambda p: p.value, reverse=True):
        if p.latency_us < best_after * (1 - tolerance):
            edges.append(p)
            best_after = p.latency_us
    return sorted(edges, key=lambda p: p.value)
