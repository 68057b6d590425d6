"""Printing and atomic file writing shared by the commands."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

console = Console(width=max(120, Console().width))


def print_json(data: Any) -> None:
    """Print data as one JSON document on stdout (no colour, no wrapping)."""
    print(json.dumps(data, default=float))


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call write(tmp) on a temporary file beside path, then rename it over path: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write text to path atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text))
