"""Printing shared by the commands (files are written with gpusim.atomic_write)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

from gpusim.errors import WavecutError

console = Console(width=max(120, Console().width))


def print_json(data: Any) -> None:
    """Print data as one strict JSON document on stdout (no colour, no wrapping, no NaN or Infinity)."""
    try:
        text = json.dumps(data, default=float, allow_nan=False)
    except ValueError:
        raise WavecutError("the result holds a non-finite number (NaN or infinity); no JSON printed") from None
    print(text)
