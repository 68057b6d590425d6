"""The one way wavecut writes an output file: complete or not there, and never replacing what is not a file.

- A regular file, or a path that does not exist yet: the content goes to a temporary file in the same
  directory, is fsynced, given its permissions (an existing file's mode, else 0o666 & ~umask) and
  renamed over the path; the directory is fsynced too. A crash or a full disk leaves the old file.
- A symlink: the file it points to is written (as above) and the link is kept.
- A FIFO or a character device: opened and written in place (never created, truncated or replaced).
- Anything else (a directory, a block device, a socket, a path under a file, an unwritable place such
  as /proc): refused with an OutputError (one line, exit code 2), as is any OSError while writing
  (ENOSPC, EACCES...); the temporary file is removed.

Written by hand because no well-kept library covers the in-place cases: `atomicwrites` is unmaintained
and, like `os.replace`, would swap a device node or FIFO for a regular file (docs/hardening.md).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from gpusim.errors import OutputError


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call write(tmp) on a temporary file, then put its content at path (see the module doc); returns path."""
    text = os.fspath(path)
    if not text.strip():
        raise OutputError("output path is empty; give a file name")
    target = Path(os.path.realpath(text))  # a symlink's file (also a dangling link's future file)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:  # ENOTDIR: a path under a file; ELOOP, EACCES...
        raise OutputError(f"{text}: cannot write there ({exc.strerror})") from None
    if st is None or stat.S_ISREG(st.st_mode):
        _replace(text, target, write, None if st is None else stat.S_IMODE(st.st_mode))
    elif stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
        _in_place(text, target, write)
    else:
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file, FIFO or character device"
        raise OutputError(f"{text}: is {kind}; give a file name")
    return Path(text)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """write_atomic for UTF-8 text."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _replace(text: str, target: Path, write: Callable[[Path], None], mode: int | None) -> None:
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=target.parent)
        os.close(fd)
        write(Path(tmp))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, _umask_mode() if mode is None else mode)
        os.replace(tmp, target)
        tmp = None
        _fsync_dir(target.parent)
    except OSError as exc:
        raise OutputError(f"{text}: cannot write ({exc.strerror or exc})") from None
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)


def _in_place(text: str, target: Path, write: Callable[[Path], None]) -> None:
    with tempfile.TemporaryDirectory(prefix="wavecut-") as scratch:
        tmp = Path(scratch) / f"out{target.suffix}"
        try:
            write(tmp)
            fd = os.open(target, os.O_WRONLY)  # no O_CREAT, no O_TRUNC: the node stays what it is
            with os.fdopen(fd, "wb") as sink, tmp.open("rb") as source:
                shutil.copyfileobj(source, sink)
        except OSError as exc:
            raise OutputError(f"{text}: cannot write ({exc.strerror or exc})") from None


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some file systems do not open directories; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
