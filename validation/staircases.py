"""Find latency staircases in measurements: rows that differ in exactly one shape parameter."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, fields

from gpusim.ops import Op
from validation.readers import Measurement

MIN_POINTS = 8


@dataclass(frozen=True)
class Staircase:
    """Rows of one device, dtype and op kind that sweep `field` with everything else fixed."""

    title: str
    field: str
    rows: list[int]  # indices into the measurements, sorted by the swept value
    values: list[int]


def shape_of(op: Op) -> dict[str, object]:
    """The op's shape parameters (its dataclass fields, name excluded)."""
    return {f.name: getattr(op, f.name) for f in fields(op) if f.name != "name"}


def _sweeps_in_group(ms: list[Measurement], idx: list[int], min_points: int) -> dict[frozenset[int], Staircase]:
    shapes = [shape_of(ms[i].op) for i in idx]
    shape = dict(zip(idx, shapes))
    names = list(shapes[0])
    found: dict[frozenset[int], Staircase] = {}
    for f in names:
        if not all(isinstance(s[f], int) for s in shapes):
            continue
        tied = {g for g in names if g != f and all(s[g] == s[f] for s in shapes)}  # e.g. depthwise: groups
        rest = [g for g in names if g != f and g not in tied]
        subgroups: dict[tuple, list[int]] = defaultdict(list)
        for i, s in zip(idx, shapes):
            subgroups[tuple(s[g] for g in rest)].append(i)
        for fixed, rows in subgroups.items():
            if len({shape[i][f] for i in rows}) < min_points:
                continue
            rows = sorted(rows, key=lambda i: shape[i][f])
            m = ms[rows[0]]
            where = ", ".join(f"{g}={v}" for g, v in zip(rest, fixed))
            title = f"{m.device} {m.dtype} {m.op.kind}{f' [{m.sweep}]' if m.sweep else ''}: {f} ({where})"
            found.setdefault(frozenset(rows), Staircase(title, f, rows, [shape[i][f] for i in rows]))
    return found


def find_staircases(ms: list[Measurement], min_points: int = MIN_POINTS) -> list[Staircase]:
    """Every sweep of at least min_points distinct values, longest first (depthwise apart from dense conv)."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, m in enumerate(ms):
        groups[(m.device, m.dtype, m.timing, m.op.kind, getattr(m.op, "is_depthwise", False), m.sweep)].append(i)
    found: dict[frozenset[int], Staircase] = {}
    for idx in groups.values():
        for key, stair in _sweeps_in_group(ms, idx, min_points).items():
            found.setdefault(key, stair)
    return sorted(found.values(), key=lambda s: -len(s.rows))
