"""Hostile output paths: a regular file is replaced atomically with the umask's permissions; a FIFO or a
symlink is written through, never replaced; a directory, a path under a file, an empty path, /proc and a
full disk are one error line and exit code 2, leaving nothing behind. No test touches a real device node:
FIFOs and symlinks are made in the test's own directory."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from gpusim import atomic_write
from gpusim.atomic_write import write_atomic, write_text_atomic
from gpusim.errors import OutputError, WavecutError
from tests.hostile import assert_refused, run_main
from wavecut.output import print_json

STAIRCASE = ["staircase", "--gpu", "t4", "--op", "linear", "--batch", "64", "--in-channels", "64"]
STAIRCASE += ["--out-channels", "8:64:8", "--json", "--plot"]


def _read_fifo(path: Path) -> tuple[threading.Thread, list[bytes]]:
    got: list[bytes] = []

    def reader() -> None:
        with path.open("rb") as f:
            got.append(f.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    return thread, got


def test_regular_file_is_replaced_with_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        path = write_text_atomic(tmp_path / "new.json", "{}\n")
    finally:
        os.umask(old)
    assert path.read_text() == "{}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # 0o666 & ~0o027, not mkstemp's 0o600
    path.chmod(0o604)
    write_text_atomic(path, "[]\n")
    assert path.read_text() == "[]\n" and stat.S_IMODE(path.stat().st_mode) == 0o604  # an existing file keeps its mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.json"]  # no temporary file left


def test_symlink_to_a_file_writes_the_file_and_keeps_the_link(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_text_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "later.json")
    write_text_atomic(dangling, "made")
    assert dangling.is_symlink() and (tmp_path / "later.json").read_text() == "made"


def test_fifo_and_symlink_to_fifo_are_written_in_place(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "pipe-link"
    link.symlink_to(fifo)
    for path in (fifo, link):
        thread, got = _read_fifo(fifo)
        write_text_atomic(path, "through the pipe\n")
        thread.join(10)
        assert got == [b"through the pipe\n"]
        assert stat.S_ISFIFO(fifo.lstat().st_mode) and link.is_symlink()


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: d / "dir", "is a directory"),
        (lambda d: d / "file.txt" / "out.json", "cannot write there"),
        (lambda d: Path("/proc/wavecut-hostile-test.json"), "cannot write"),
    ],
)
def test_unwritable_targets_are_refused(tmp_path, make, needle):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file.txt").write_text("keep")
    with pytest.raises(OutputError, match=needle):
        write_text_atomic(make(tmp_path), "x")
    assert (tmp_path / "file.txt").read_text() == "keep" and not list((tmp_path / "dir").iterdir())
    assert not Path("/proc/wavecut-hostile-test.json").exists()


def test_empty_path_is_refused():
    with pytest.raises(OutputError, match="output path is empty"):
        write_text_atomic("", "x")


def test_full_disk_is_one_error_and_leaves_the_old_file(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("old plan")

    def full(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OutputError, match="No space left on device"):
        write_atomic(path, full)
    assert path.read_text() == "old plan" and sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_full_disk_on_a_fifo_is_one_error(tmp_path, monkeypatch):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    thread, _ = _read_fifo(fifo)

    def no_space(*_args) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic_write.shutil, "copyfileobj", no_space)
    with pytest.raises(OutputError, match="No space left on device"):
        write_text_atomic(fifo, "x")
    thread.join(10)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_plot_writes_each_format_by_its_extension(tmp_path, capsys, monkeypatch):
    for name, magic in (("p.png", b"\x89PNG"), ("p.svg", b"<?xml"), ("p.pdf", b"%PDF")):
        code, _, err = run_main([*STAIRCASE, str(tmp_path / name)], capsys, monkeypatch)
        assert code == 0, err
        assert (tmp_path / name).read_bytes().startswith(magic)


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        ("p.jpg", "unknown plot format '.jpg'"),
        ("noext", "unknown plot format '(no extension)'"),
        ("dir.png", "is a directory"),
        ("file.txt/p.png", "cannot write there"),
        ("", "unknown plot format"),
    ],
)
def test_bad_plot_paths_are_one_line(tmp_path, capsys, monkeypatch, target, needle):
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "file.txt").write_text("keep")
    path = str(tmp_path / target) if target else ""
    assert_refused([*STAIRCASE, path], capsys, monkeypatch, tmp_path, needle)


def test_full_disk_from_the_cli(tmp_path, capsys, monkeypatch):
    def no_space(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic_write.os, "fsync", no_space)
    assert_refused([*STAIRCASE, str(tmp_path / "p.png")], capsys, monkeypatch, tmp_path, "No space left on device")


def test_report_folder_under_a_file_is_one_line(tmp_path, capsys, monkeypatch):
    csv = tmp_path / "t.csv"
    csv.write_text("OPName,Latency,Device,B,M,N,K\nbmm,0.1117,Tesla V100-PCIE-32GB,384,128,64,128\n", encoding="utf-8")
    (tmp_path / "file.txt").write_text("keep")
    args = ["validate", "score", "--data", str(csv), "--report", str(tmp_path / "file.txt" / "report")]
    assert_refused(args, capsys, monkeypatch, tmp_path, "cannot write")


def test_json_output_is_strict():
    with pytest.raises(WavecutError, match="non-finite number"):
        print_json({"total_us": float("inf")})


def test_plan_out_to_a_directory_or_fifo_link(tmp_path, capsys, monkeypatch):
    (tmp_path / "dir.json").mkdir()
    args = ["plan", "resnet18", "--gpu", "t4", "--batch", "8", "--input", "3x32x32", "--json", "--out"]
    assert_refused([*args, str(tmp_path / "dir.json")], capsys, monkeypatch, tmp_path, "is a directory")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "plan-link.json").symlink_to(fifo)
    thread, got = _read_fifo(fifo)
    code, out, err = run_main([*args, str(tmp_path / "plan-link.json")], capsys, monkeypatch)
    thread.join(10)
    assert code == 0, err
    assert b'"kind": "plan"' in got[0] and stat.S_ISFIFO(fifo.lstat().st_mode)
