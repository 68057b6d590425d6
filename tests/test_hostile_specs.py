"""Hostile GPU spec files and names: each is one error line and exit code 2, never a silently wrong spec."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpusim
from gpusim import spec as spec_module
from gpusim.errors import SpecError
from gpusim.spec import DEVICE_DIR, load_spec, load_spec_file
from gpusim.yaml_load import MAX_BYTES, MAX_DEPTH
from tests.hostile import assert_refused, run_main

T4 = DEVICE_DIR / "t4.yaml"


def _t4_with(tmp_path: Path, old: str, new: str, name: str = "bad.yaml") -> Path:
    text = T4.read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "needles"),
    [
        ("sm_count: 40", "sm_count: true", ("field 'sm_count'", "got True")),
        ("sm_count: 40", 'sm_count: "40"', ("field 'sm_count'", "got '40'")),
        ("sm_count: 40", "sm_count: 40\nsm_count: 41", ("duplicate key 'sm_count'",)),
        ("memory_bandwidth_gbs: 320", "memory_bandwidth_gbs: .inf", ("memory_bandwidth_gbs", "finite")),
        ("memory_bandwidth_gbs: 320", "memory_bandwidth_gbs: .nan", ("memory_bandwidth_gbs", "finite")),
        ("sm_count: 40", "sm_count: 40\nsm_limits: {shared_memory_per_sm: 1}", ("shared_memory_per_sm (1)",)),
        ("sm_count: 40", "sm_count: 40\nsm_limits: {max_threads_per_sm: 64}", ("max_threads_per_sm",)),
        ("fp32: ", "fp32: true #", ("peak_tflops.fp32", "got True")),
        ("memory_type: GDDR6", "memory_type: GDDR9", ("memory_type", "'GDDR9'", "allowed: GDDR5, GDDR5X, GDDR6")),
        ("memory_bus_bits: 256\n", "", ("memory_type and memory_bus_bits together",)),
    ],
)
def test_bad_field_is_one_line(tmp_path, capsys, monkeypatch, old, new, needles):
    path = _t4_with(tmp_path, old, new)
    assert_refused(["specs", "check", str(path)], capsys, monkeypatch, tmp_path, str(path), *needles)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"name: T\xe9sla\n", "not UTF-8 text"),  # latin-1
        (b"\x00\x01\x02\xff\xfe binary", "not UTF-8 text"),
        (b"a: " + b"[" * 5000 + b"]" * 5000, f"nested more than {MAX_DEPTH} levels"),
        (b"a:\n" + b"".join(b"  " * i + b"b:\n" for i in range(1, 400)), f"nested more than {MAX_DEPTH} levels"),
        (b"x" * (MAX_BYTES + 10), "larger than"),
        (b"", "expected a mapping of fields"),
        (b"- 1\n- 2\n", "expected a mapping of fields"),
        (b"a: [unclosed\n", "is not valid YAML"),
        (b"a: !!python/object/apply:os.system ['true']\n", "is not valid YAML"),
    ],
)
def test_unreadable_spec_is_one_line(tmp_path, capsys, monkeypatch, content, needle):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    assert_refused(["specs", "check", str(path)], capsys, monkeypatch, tmp_path, needle)


def test_directory_and_missing_spec_file(tmp_path, capsys, monkeypatch):
    (tmp_path / "dir.yaml").mkdir()
    assert_refused(["specs", "check", str(tmp_path / "dir.yaml")], capsys, monkeypatch, tmp_path, "cannot read")
    assert_refused(["specs", "show", str(tmp_path / "none.yaml")], capsys, monkeypatch, tmp_path, "no such spec file")


def test_empty_gpu_name_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_refused(["staircase", "--gpu", ""], capsys, monkeypatch, tmp_path, "--gpu: empty GPU name")
    assert_refused(["staircase", "--gpu", "  "], capsys, monkeypatch, tmp_path, "--gpu: empty GPU name")


def test_a_directory_named_like_a_gpu_does_not_shadow_it(tmp_path, capsys, monkeypatch):
    (tmp_path / "a100").mkdir()
    (tmp_path / "t4").mkdir()
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(["specs", "show", "a100", "--json"], capsys, monkeypatch)
    assert code == 0, err
    assert '"sm_count": 108' in out
    assert load_spec("t4").path == str(T4)


def test_a_regular_file_is_still_read_as_a_spec(tmp_path, monkeypatch):
    shutil.copy(T4, tmp_path / "mygpu")
    monkeypatch.chdir(tmp_path)
    assert load_spec("mygpu").sm_count == 40


def test_checked_file_clashing_with_a_shipped_alias(tmp_path, capsys, monkeypatch):
    path = _t4_with(tmp_path, "name: Tesla T4", "name: My T4")
    assert_refused(["specs", "check", str(path)], capsys, monkeypatch, tmp_path, "is also used by", "t4.yaml")


def test_two_shipped_files_with_one_alias_clash(tmp_path, monkeypatch):
    devices = tmp_path / "devices"
    devices.mkdir()
    shutil.copy(T4, devices / "t4.yaml")
    _t4_with(devices, "name: Tesla T4", "name: Other T4", name="t4-copy.yaml")
    monkeypatch.setattr(spec_module, "DEVICE_DIR", devices)
    spec_module._builtin_specs.cache_clear()
    spec_module._load_spec_cached.cache_clear()
    try:
        with pytest.raises(SpecError, match="is also used by"):
            load_spec("t4")
    finally:
        monkeypatch.undo()
        spec_module._builtin_specs.cache_clear()
        spec_module._load_spec_cached.cache_clear()
    assert load_spec("t4").path == str(T4)


_SCALARS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=20),
    st.sampled_from(
        [".inf", "-.inf", ".nan", "0x10", "1e400", "[]", "{}", "~", "'7.5'", "*a", "&a 1", "!!binary AAAA"]
    ),
)
_FIELDS = [line.split(":", 1)[0] for line in T4.read_text().splitlines() if line and line[0].isalpha()]


@settings(derandomize=True, max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(_FIELDS), value=_SCALARS, raw=st.booleans())
def test_fuzzed_spec_loads_or_is_one_spec_error(tmp_path, field, value, raw):
    """Any value in any top-level field: the file loads as a usable spec (finite prediction) or raises a
    one-line SpecError; never another exception."""
    lines = T4.read_text().splitlines()
    text = value if raw and isinstance(value, str) else repr(value) if not isinstance(value, str) else f"'{value}'"
    out = [f"{field}: {text}" if line.startswith(f"{field}:") else line for line in lines]
    path = tmp_path / "fuzz.yaml"
    path.write_text("\n".join(out) + "\n")
    try:
        spec = load_spec_file(path)
    except SpecError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(spec.sm_count, int) and not isinstance(spec.sm_count, bool) and spec.sm_count > 0
    total = gpusim.predict(gpusim.Linear(256, 512, 512), spec, "fp16").total_us
    assert math.isfinite(total) and total > 0


def test_limits_that_fit_no_kernel_are_an_error_not_infinity(tmp_path, capsys, monkeypatch):
    """Limits consistent with each other, but too small for any GEMM tile: an error, never 'total inf us'."""
    path = _t4_with(
        tmp_path,
        "sm_count: 40",
        "sm_count: 40\nsm_limits: {shared_memory_per_sm: 1024, max_shared_memory_per_block: 1024}",
    )
    spec = load_spec_file(path)
    with pytest.raises(gpusim.OpError, match="no kernel for linear op"):
        gpusim.predict(gpusim.Linear(256, 512, 512), spec, "fp16")
    args = ["staircase", "--gpu", str(path), "--json"]
    assert_refused(args, capsys, monkeypatch, tmp_path, "no kernel for conv2d op", "sm_limits")
