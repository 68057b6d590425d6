"""Printing shared by the commands (files are written with gpusim.atomic_write)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

console = Console(width=max(120, Console().width))


def print_json(data: Any) -> None:
    """Print data as one JSON document on stdout (no colour, no wrapping)."""
    print(json.dumps(data, default=float))
