"""Readers for recorded timings: NeuSight's CSV and the project's own (validation/README.md).

Both formats are described as data (`CsvFormat`) and read by one parser. Rows are
numbered as in a spreadsheet (the header is row 1); every error names file, row and column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gpusim.dtypes import DTYPE_BYTES
from gpusim.errors import OpError, WavecutError
from gpusim.ops import Conv2d, Linear, Matmul, Op
from validation import project_format


class DataError(WavecutError):
    """A timing file that cannot be used; the message names the file, row and column."""


# What a row's time includes (../shared/data/measured/README.md, "What a row's time includes"):
# op_wall: one framework op timed alone with CUDA events around it (host and launch inside);
# gpu_kernel: the summed durations of the op's CUDA kernels only (a profiler's kernel times);
# host_wall_step: the host's wall time of a whole forward, synchronised at the end.
TIMINGS: tuple[str, ...] = ("op_wall", "gpu_kernel", "host_wall_step")


@dataclass(frozen=True)
class Measurement:
    """One timed op: what ran, where, in which dtype, how long, and the main kernel's grid if recorded."""

    op: Op
    device: str
    dtype: str
    latency_us: float
    grid: int | None
    kernel: str
    sweep: str
    row: int
    torch: str = ""  # PyTorch version the row was measured with ("" if not recorded)
    sm_clock_mhz: float | None = None  # median SM clock over the timed repeats, if recorded
    timing: str = "op_wall"  # what the time includes (TIMINGS)


@dataclass(frozen=True)
class Timings:
    """The measurements read from one file."""

    path: Path
    format: str
    measurements: list[Measurement]


Value = int | tuple[int, int]


@dataclass(frozen=True)
class CsvFormat:
    """How one CSV format names its columns and turns a row's shape cells into a gpusim op."""

    name: str
    op_column: str
    latency_column: str
    latency_to_us: float
    device_column: str
    dtype_column: str
    default_dtype: str | None  # None: the dtype column is required
    shape_columns: dict[str, tuple[str, ...]]  # op value -> the shape columns its rows need
    pair_columns: frozenset[str]  # shape columns that may hold "HxW"
    build: Callable[[str, dict[str, Value], str], Op]
    zero_columns: frozenset[str]  # shape columns that may be 0 (padding); every other one must be >= 1
    grid_columns: tuple[str, str, str]
    kernel_column: str
    name_column: str | None = None
    sweep_column: str | None = None
    torch_column: str | None = None
    clock_column: str | None = None
    timing_column: str = "timing"
    default_timing: str = "op_wall"  # a file without the column (or an empty cell): what its rows time

    def required(self) -> list[str]:
        """Columns every file of this format must have."""
        cols = [self.op_column, self.latency_column, self.device_column]
        return cols + ([self.dtype_column] if self.default_dtype is None else [])


def _neusight_op(op: str, v: dict[str, Value], name: str) -> Op:
    """conv: NCHW Conv2d; linear: input [B, M, N] -> K features; bmm: [B, M, N] @ [B, N, K].

    The bmm mapping is read off the recorded grids: with cuBLAS tile BMxBN, Grid x =
    ceil(K / BM), Grid y = ceil(M / BN) and Grid z = B on every row, so K is the output's
    column count and N the contracted dimension."""
    if op == "conv":
        return Conv2d(
            v["B"],
            v["Input_Channel"],
            v["Output_Channel"],
            v["Input_Size"],
            v["Input_Size"],
            v["Kernel_Szie"],
            v["Stride"],
            v["Padding"],
            name=name,
        )
    if op == "linear":
        return Linear(v["B"] * v["M"], v["N"], v["K"], name=name)
    return Matmul(v["B"], m=v["M"], n=v["K"], k=v["N"], name=name)


NEUSIGHT = CsvFormat(
    name="neusight",
    op_column="OPName",
    latency_column="Latency",
    latency_to_us=1000.0,
    device_column="Device",
    dtype_column="dtype",
    default_dtype="fp32",
    shape_columns={
        "conv": ("B", "Input_Channel", "Output_Channel", "Kernel_Szie", "Input_Size", "Stride", "Padding"),
        "linear": ("B", "M", "N", "K"),
        "bmm": ("B", "M", "N", "K"),
    },
    pair_columns=frozenset(),
    build=_neusight_op,
    zero_columns=frozenset({"Padding"}),
    grid_columns=("Grid x", "Grid y", "Grid z"),
    kernel_column="Kernel Name",
    torch_column="Torch Version",
)

PROJECT = CsvFormat(
    name="project",
    op_column="op",
    latency_column="median_us",
    latency_to_us=1.0,
    device_column="device",
    dtype_column="dtype",
    default_dtype=None,
    shape_columns=project_format.SHAPE_COLUMNS,
    pair_columns=project_format.PAIR_COLUMNS,
    build=project_format.build_op,
    zero_columns=project_format.ZERO_COLUMNS,
    grid_columns=("grid_x", "grid_y", "grid_z"),
    kernel_column="kernel",
    name_column="name",
    sweep_column="sweep",
    torch_column="torch",
    clock_column="sm_clock_mhz",
)


# Largest shape or grid cell accepted: CUDA's grid x limit (2^31 - 1). A larger dimension is a typo or a
# corrupted file (M=999999999999999999 once "measured" an op at 4.8e15 times its prediction).
MAX_DIMENSION = 2**31 - 1


def _fail(path: Path, row: int, column: str, message: str) -> DataError:
    return DataError(f"{path}: row {row}, column '{column}': {message}")


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _integer(text: str) -> int:
    try:
        return int(text)  # exact, however long (float() would round 999999999999999999 up)
    except ValueError:
        pass
    value = _number(text)  # "64.0", "6.4e1"
    if not value.is_integer():
        raise ValueError(text)
    return int(value)


def _pair_or_int(text: str) -> Value:
    parts = text.lower().split("x")
    if len(parts) == 2:
        return _integer(parts[0]), _integer(parts[1])
    return _integer(text)


def detect_format(path: Path, header: list[str]) -> CsvFormat:
    """NeuSight's format if the header has 'OPName', the project's if it has 'op'."""
    if NEUSIGHT.op_column in header:
        return NEUSIGHT
    if PROJECT.op_column in header:
        return PROJECT
    raise _fail(
        path,
        1,
        "OPName' or 'op",
        "missing from the header: neither NeuSight's format nor the project's (validation/README.md)",
    )


class _RowReader:
    """Parses the data rows of one file in one format; `timing` replaces the format's default timing."""

    def __init__(self, path: Path, fmt: CsvFormat, header: list[str], timing: str | None = None):
        self.path, self.fmt = path, fmt
        self.timing = timing or fmt.default_timing
        self.index = {c: i for i, c in enumerate(header)}
        for col in fmt.required():
            if col not in self.index:
                raise _fail(path, 1, col, "missing from the header")

    def cell(
        self,
        cells: list[str],
        row: int,
        column: str,
        parse: Callable[[str], object] | None = None,
        optional: bool = False,
    ):
        """The cell of `column`, parsed; None when optional and absent or empty."""
        i = self.index.get(column)
        if i is None:
            if optional:
                return None
            raise _fail(self.path, row, column, "missing from the header")
        if i >= len(cells):
            raise _fail(
                self.path, row, column, f"missing cell (the row has {len(cells)} cells, the header {len(self.index)})"
            )
        text = cells[i].strip()
        if not text:
            if optional:
                return None
            raise _fail(self.path, row, column, "empty")
        if parse is None:
            return text
        try:
            return parse(text)
        except ValueError:
            raise _fail(self.path, row, column, f"expected a number, got {text!r}") from None

    def bounded(self, row: int, column: str, value: Value, low: int) -> Value:
        """value (or both halves of an HxW pair) within low..MAX_DIMENSION, else a DataError naming the column."""
        for v in value if isinstance(value, tuple) else (value,):
            if not low <= v <= MAX_DIMENSION:
                raise _fail(self.path, row, column, f"must be between {low} and {MAX_DIMENSION:,}, got {v}")
        return value

    def measurement(self, cells: list[str], row: int) -> Measurement:
        """One data row as a Measurement."""
        fmt = self.fmt
        op_value = self.cell(cells, row, fmt.op_column)
        if op_value not in fmt.shape_columns:
            raise _fail(
                self.path, row, fmt.op_column, f"unknown op {op_value!r}; allowed: {', '.join(fmt.shape_columns)}"
            )
        shape = {
            c: self.bounded(
                row,
                c,
                self.cell(cells, row, c, _pair_or_int if c in fmt.pair_columns else _integer),
                0 if c in fmt.zero_columns else 1,
            )
            for c in fmt.shape_columns[op_value]
        }
        name = (self.cell(cells, row, fmt.name_column, optional=True) or "") if fmt.name_column else ""
        try:
            op = fmt.build(op_value, shape, name)
        except OpError as exc:
            raise _fail(self.path, row, fmt.op_column, str(exc)) from None
        latency = self.cell(cells, row, fmt.latency_column, _number)
        if latency <= 0:
            raise _fail(self.path, row, fmt.latency_column, f"must be positive, got {latency}")
        dtype = self.cell(cells, row, fmt.dtype_column, optional=fmt.default_dtype is not None) or fmt.default_dtype
        if dtype not in DTYPE_BYTES:
            raise _fail(self.path, row, fmt.dtype_column, f"unknown dtype {dtype!r}; allowed: {', '.join(DTYPE_BYTES)}")
        grid = [self.cell(cells, row, c, _integer, optional=True) for c in fmt.grid_columns]
        grid = [g if g is None else self.bounded(row, c, g, 1) for g, c in zip(grid, fmt.grid_columns)]
        clock = self.cell(cells, row, fmt.clock_column, _number, optional=True) if fmt.clock_column else None
        if clock is not None and clock <= 0:
            raise _fail(self.path, row, fmt.clock_column, f"must be positive, got {clock}")
        timing = self.cell(cells, row, fmt.timing_column, optional=True) or self.timing
        if timing not in TIMINGS:
            raise _fail(self.path, row, fmt.timing_column, f"unknown timing {timing!r}; allowed: {', '.join(TIMINGS)}")
        return Measurement(
            op=op,
            device=self.cell(cells, row, fmt.device_column),
            dtype=dtype,
            latency_us=latency * fmt.latency_to_us,
            grid=None if None in grid else grid[0] * grid[1] * grid[2],
            kernel=self.cell(cells, row, fmt.kernel_column, optional=True) or "",
            sweep=(self.cell(cells, row, fmt.sweep_column, optional=True) or "") if fmt.sweep_column else "",
            row=row,
            torch=(self.cell(cells, row, fmt.torch_column, optional=True) or "") if fmt.torch_column else "",
            sm_clock_mhz=clock,
            timing=timing,
        )


def read_timings(path: str | Path, timing: str | None = None) -> Timings:
    """Read a NeuSight or project CSV (detected from the header) into measurements.

    `timing` (one of TIMINGS) is what rows without a `timing` cell time; default: the format's
    (op_wall for both: NeuSight's rows and the project's harness time one eager op with CUDA events)."""
    path = Path(path)
    if timing is not None and timing not in TIMINGS:
        raise DataError(f"--timing: unknown timing {timing!r}; allowed: {', '.join(TIMINGS)}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark is fine
            records = [r for r in csv.reader(f)]
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte offset {exc.start}); save the CSV as UTF-8") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a CSV text file ({exc})") from None
    if not records or not any(c.strip() for c in records[0]):
        raise DataError(f"{path}: row 1, column (none): empty file, expected a header row")
    header = [c.strip() for c in records[0]]
    fmt = detect_format(path, header)
    reader = _RowReader(path, fmt, header, timing)
    rows = [
        reader.measurement(cells, i) for i, cells in enumerate(records[1:], start=2) if any(c.strip() for c in cells)
    ]
    if not rows:
        raise DataError(f"{path}: row 2, column (all): no data rows after the header")
    return Timings(path=path, format=fmt.name, measurements=rows)
