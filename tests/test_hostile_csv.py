"""Hostile timing CSVs: each bad file is one error line naming the file, row and column, exit code 2;
a spreadsheet's UTF-8 byte-order mark is fine; absurd sizes are refused with their bounds."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile import assert_refused
from validation.readers import MAX_DIMENSION, DataError, read_timings

HEADER = "OPName,Latency,Device,Kernel Name,Grid x,Grid y,Grid z,B,M,N,K"
ROW = ["bmm", "0.1117", "Tesla V100-PCIE-32GB", "volta_sgemm_32x128_nn", "4", "1", "384", "384", "128", "64", "128"]
CONV_HEADER = "OPName,Latency,Device,B,Input_Channel,Output_Channel,Kernel_Szie,Input_Size,Stride,Padding"


def _csv(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "timings.csv"
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


def _row(**cells: str) -> str:
    columns = HEADER.split(",")
    values = list(ROW)
    for name, value in cells.items():
        values[columns.index(name)] = value
    return f"{HEADER}\n{','.join(values)}\n"


def test_byte_order_mark_is_accepted(tmp_path):
    timings = read_timings(_csv(tmp_path, b"\xef\xbb\xbf" + _row().encode()))
    assert timings.format == "neusight" and timings.measurements[0].op.m == 128


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (_row(M="999999999999999999"), ("row 2, column 'M'", f"between 1 and {MAX_DIMENSION:,}", "999999999999999999")),
        (_row(K="-4"), ("row 2, column 'K'", "got -4")),
        (_row(B="0"), ("row 2, column 'B'", "between 1")),
        (_row(N="1e3000"), ("column 'N'", "expected a number")),
        (_row(Latency="nan"), ("column 'Latency'", "expected a number")),
        (_row(Latency="-1"), ("column 'Latency'", "must be positive")),
        (_row(**{"Grid x": "0"}), ("column 'Grid x'", "between 1")),
        (_row(OPName="conv3d"), ("column 'OPName'", "unknown op")),
        (f"{CONV_HEADER}\nconv,0.1,T4,8,64,64,3,56,1,-1\n", ("column 'Padding'", "between 0")),
        ("", ("empty file",)),
        (HEADER + "\n", ("no data rows",)),
        ("a,b\n1,2\n", ("neither NeuSight's format nor the project's",)),
        (HEADER.removesuffix(",K") + "\n" + ",".join(ROW[:-1]) + "\n", ("column 'K'", "missing from the header")),
        ("OPName,Latency\n" + "x" * 200_000 + ",1\n", ("not a CSV text file",)),
    ],
)
def test_bad_rows_are_one_line(tmp_path, capsys, monkeypatch, text, needles):
    path = _csv(tmp_path, text)
    assert_refused(["validate", "score", "--data", str(path)], capsys, monkeypatch, tmp_path, str(path), *needles)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (_row(Device="Tesla T\xe94").encode("latin-1"), "not UTF-8 text"),
        (b"OPName\x00,Latency\n", "missing from the header"),
    ],
)
def test_undecodable_files_are_one_line(tmp_path, capsys, monkeypatch, content, needle):
    path = _csv(tmp_path, content)
    assert_refused(["validate", "score", "--data", str(path)], capsys, monkeypatch, tmp_path, needle)


def test_directory_as_data_is_one_line(tmp_path, capsys, monkeypatch):
    assert_refused(["validate", "score", "--data", str(tmp_path)], capsys, monkeypatch, tmp_path, "cannot read")


_CELLS = st.one_of(
    st.integers(min_value=-(2**66), max_value=2**66).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
    st.sampled_from(["", " ", "64x64", "1e5", "0x10", "-0", "nan", "inf", '"', "1,2"]),
)


@settings(derandomize=True, max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(column=st.integers(min_value=0, max_value=len(ROW) - 1), value=_CELLS)
def test_fuzzed_cells_read_or_are_one_data_error(tmp_path, column, value):
    """Any text in any cell: the row reads as an op within bounds with a finite positive latency, or the
    reader raises one DataError line; never another exception."""
    cells = list(ROW)
    cells[column] = value
    path = tmp_path / "fuzz.csv"
    path.write_text(HEADER + "\n" + ",".join(cells) + "\n", encoding="utf-8")
    try:
        timings = read_timings(path)
    except DataError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    for m in timings.measurements:
        assert math.isfinite(m.latency_us) and m.latency_us > 0
        assert all(1 <= getattr(m.op, f) <= MAX_DIMENSION for f in ("batch", "m", "n", "k"))
