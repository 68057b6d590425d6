"""The project's own timing CSV (documented in validation/README.md): columns and op <-> cells."""

from __future__ import annotations

from dataclasses import fields

from gpusim.ops import Conv2d, Linear, Matmul, Op

OP_CLASSES: dict[str, type[Op]] = {"conv2d": Conv2d, "linear": Linear, "bmm": Matmul}

# The shape columns of each op kind: exactly the gpusim op's fields, so a row rebuilds the op.
SHAPE_COLUMNS: dict[str, tuple[str, ...]] = {
    kind: tuple(f.name for f in fields(cls) if f.name != "name") for kind, cls in OP_CLASSES.items()
}

# Conv parameters that may differ along height and width; written "HxW" when they do.
PAIR_COLUMNS = frozenset({"kernel_size", "stride", "padding", "dilation"})

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
    if isinstance(value, tuple):
        return str(value[0]) if value[0] == value[1] else f"{value[0]}x{value[1]}"
    return str(value)


def op_kind(op: Op) -> str:
    """The CSV op kind of a gpusim op (depthwise conv is conv2d with groups)."""
    for kind, cls in OP_CLASSES.items():
        if isinstance(op, cls):
            return kind
    raise ValueError(
        f"{type(op).__name__} has no row form; allowed: {', '.join(c.__name__ for c in OP_CLASSES.values())}"
    )


def op_cells(op: Op) -> dict[str, str]:
    """The op, name and shape cells of one row."""
    kind = op_kind(op)
    return {"op": kind, "name": op.name, **{c: _cell(getattr(op, c)) for c in SHAPE_COLUMNS[kind]}}
