"""The project's own timing CSV (documented in validation/README.md): columns and op <-> cells."""

from __future__ import annotations

from dataclasses import fields

from gpusim.ops import OP_KINDS, Op
from validation.torch_calls import TORCH_CALLS

# The op kinds a row can hold: those the harness can time (a torch builder in validation.torch_calls).
OP_CLASSES: dict[str, type[Op]] = {kind: OP_KINDS[kind] for kind in TORCH_CALLS}

# The shape columns of each op kind: exactly the gpusim op's fields, so a row rebuilds the op.
SHAPE_COLUMNS: dict[str, tuple[str, ...]] = {
    kind: tuple(f.name for f in fields(cls) if f.name != "name") for kind, cls in OP_CLASSES.items()
}

# Conv parameters that may differ along height and width; written "HxW" when they do.
PAIR_COLUMNS = frozenset({"kernel_size", "stride", "padding", "dilation"})
# Shape columns that may be 0 (the op kinds' zero_fields: conv padding, a causal flag); others are >= 1.
ZERO_COLUMNS = frozenset(f for cls in OP_CLASSES.values() for f in cls.zero_fields)

TIMING_COLUMNS = ("dtype", "device", "timing", "median_us", "p10_us", "p90_us", "repeats", "l2_flush")
CLOCK_COLUMNS = ("sm_clock_mhz", "power_w")  # medians over the timed repeats (validation/clocks.py)
KERNEL_COLUMNS = ("kernel", "grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z", "kernels")
ENVIRONMENT_COLUMNS = ("driver", "cuda", "torch", "cudnn")

_SHAPES = tuple(dict.fromkeys(c for cols in SHAPE_COLUMNS.values() for c in cols))
COLUMNS: tuple[str, ...] = (
    "op",
    "name",
    "sweep",
    *_SHAPES,
    *TIMING_COLUMNS,
    *CLOCK_COLUMNS,
    *KERNEL_COLUMNS,
    *ENVIRONMENT_COLUMNS,
)


def build_op(kind: str, values: dict[str, int | tuple[int, int]], name: str) -> Op:
    """The gpusim op of one row (kind is a key of OP_CLASSES)."""
    return OP_CLASSES[kind](**values, name=name)


def _cell(value: int | tuple[int, int]) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, tuple):
        return str(value[0]) if value[0] == value[1] else f"{value[0]}x{value[1]}"
    return str(value)


def op_kind(op: Op) -> str:
    """The CSV op kind of a gpusim op (depthwise conv is conv2d with groups)."""
    if op.kind not in OP_CLASSES:
        raise ValueError(f"{type(op).__name__} has no row form; allowed: {', '.join(OP_CLASSES)}")
    return op.kind


def op_cells(op: Op) -> dict[str, str]:
    """The op, name and shape cells of one row."""
    kind = op_kind(op)
    return {"op": kind, "name": op.name, **{c: _cell(getattr(op, c)) for c in SHAPE_COLUMNS[kind]}}
