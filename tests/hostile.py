"""Helpers for the hostile-input tests (tests/test_hostile_*.py): run `wavecut` in process through its real
entry point (wavecut.cli.main, which turns a WavecutError into one line and exit code 2) and check that a
bad input gave exactly that: exit 2, one `wavecut: error:` line on stderr, no traceback, no file touched."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from wavecut.cli import main


def run_main(args: list[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `wavecut ARGS` run in this process."""
    monkeypatch.setattr(sys, "argv", ["wavecut", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else code), out, err


def snapshot(directory: Path) -> dict[str, tuple[int, bytes | str]]:
    """Every entry under directory: its mode and its content (a file's bytes, a link's target)."""
    state: dict[str, tuple[int, bytes | str]] = {}
    for p in sorted(directory.rglob("*")):
        st = p.lstat()
        if p.is_symlink():
            content: bytes | str = str(p.readlink())
        elif p.is_file():
            content = p.read_bytes()
        else:
            content = ""
        state[str(p.relative_to(directory))] = (st.st_mode, content)
    return state


def assert_one_line_error(code: int, err: str, *needles: str) -> str:
    """Exit code 2 and exactly one `wavecut: error:` line on stderr (no traceback), holding every needle."""
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("wavecut: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def assert_refused(
    args: list[str],
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    watched: Path,
    *needles: str,
) -> str:
    """`wavecut ARGS` fails with one error line and leaves every file under `watched` as it was."""
    before = snapshot(watched)
    code, _, err = run_main(args, capsys, monkeypatch)
    line = assert_one_line_error(code, err, *needles)
    assert snapshot(watched) == before
    return line
