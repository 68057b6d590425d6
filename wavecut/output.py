"""Printing shared by the commands (files are written with gpusim.atomic_write)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from gpusim.errors import WavecutError

if TYPE_CHECKING:
    from validation.score import GroupScore

console = Console(width=max(120, Console().width))


def print_json(data: Any) -> None:
    """Print data as one strict JSON document on stdout (no colour, no wrapping, no NaN or Infinity)."""
    try:
        text = json.dumps(data, default=float, allow_nan=False)
    except ValueError:
        raise WavecutError("the result holds a non-finite number (NaN or infinity); no JSON printed") from None
    print(text)


def pct(x: float | None) -> str:
    """A percentage with one decimal, '-' when there is none."""
    return "-" if x is None else f"{x:.1f}%"


def print_group_tables(groups: Iterable[tuple[str, Mapping[str, GroupScore]]]) -> None:
    """One table per (title, scores by group key) pair: rows, MAPE and median APE of each group."""
    for title, scores in groups:
        table = Table()
        for col in (title, "rows", "MAPE", "median APE"):
            table.add_column(col, justify="left" if col == title else "right")
        for key, g in scores.items():
            table.add_row(key, str(g.rows), pct(g.mape), pct(g.median_ape))
        console.print(table)
