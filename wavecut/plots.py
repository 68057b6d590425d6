"""Plots for the CLI (matplotlib, headless): PNG, SVG or PDF, chosen by the file's extension."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gpusim.atomic_write import write_atomic  # noqa: E402
from gpusim.errors import OutputError  # noqa: E402
from gpusim.staircase import StairPoint, step_edges  # noqa: E402

PLOT_FORMATS = ("png", "svg", "pdf")


def plot_format(path: Path) -> str:
    """The format a plot path asks for by its extension; OutputError for any other extension."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in PLOT_FORMATS:
        raise OutputError(
            f"--plot: {path}: unknown plot format {Path(path).suffix or '(no extension)'!r}; "
            f"allowed extensions: {', '.join('.' + f for f in PLOT_FORMATS)}"
        )
    return fmt


def plot_staircase(points: Sequence[StairPoint], title: str, path: Path) -> None:
    """Latency against the swept value, each step's right edge labelled with its wave count."""
    fmt = plot_format(path)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.step([p.value for p in points], [p.latency_us for p in points], where="post", lw=1.2, label="predicted")
    for e in step_edges(points):
        ax.plot(e.value, e.latency_us, "o", ms=3, color="tab:red")
        ax.annotate(f"{e.waves}w", (e.value, e.latency_us), textcoords="offset points", xytext=(2, 4), fontsize=7)
    ax.set_xlabel(title.rsplit("sweeping ", 1)[-1])
    ax.set_ylabel("latency (us)")
    ax.set_title(title + "  (labels: waves at each step's right edge)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format=fmt))
    plt.close(fig)
