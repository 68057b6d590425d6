"""The CLI's error contract through the real entry point, whatever typer version is installed.

CI runs this file twice: with the newest typer that resolves and with the lowest one that
pyproject.toml declares (`.ci/run`), so a typer release that changes how errors travel
(typer >= 0.20 vendors its own click) cannot break "one line on stderr, exit code 2".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

STAIRCASE = ["staircase", "--op", "conv2d", "--batch", "1", "--in-channels", "8", "--size", "7", "--kernel", "3"]


def assert_one_line_exit_2(result, *expected: str) -> None:
    """Exit code 2, exactly one stderr line starting 'wavecut: error:', containing every expected text."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("wavecut: error: "), result.stderr
    for text in expected:
        assert text in lines[0]


def test_unknown_gpu() -> None:
    result = run_cli(*STAIRCASE, "--out-channels", "1:8", "--gpu", "no-such-gpu")
    assert_one_line_exit_2(result, "unknown GPU 'no-such-gpu'", "wavecut specs")


def test_bad_spec_file(tmp_path: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text("name: x\n  bad: [\n")
    assert_one_line_exit_2(run_cli("specs", "check", str(spec)), str(spec), "line 2")


def test_malformed_csv(tmp_path: Path) -> None:
    data = tmp_path / "timings.csv"
    data.write_text("a,b\n1,2\n")
    assert_one_line_exit_2(run_cli("validate", "score", "--data", str(data)), str(data), "missing from the header")


@pytest.mark.slow
def test_unreachable_budget() -> None:
    result = run_cli("plan", "resnet18", "--gpu", "t4", "--budget", "1us")
    assert_one_line_exit_2(result, "budget 1.0 us cannot be reached", "lowest predicted latency")


def test_usage_error_exits_2() -> None:
    """Typer's own usage errors keep click's exit code 2 and print no traceback."""
    result = run_cli(*STAIRCASE, "--out-channels", "1:8", "--no-such-option")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--no-such-option" in result.stderr
