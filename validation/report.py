"""The markdown report with PNG plots: predicted vs measured, error histogram, staircases overlaid.

Builds matplotlib Figures (no pyplot, no global state); the caller writes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from gpusim.errors import WavecutError
from validation.score import GroupScore, Scored
from validation.selection import FIGURE_HEADS, priced_groups, shown_figures, summary
from validation.staircases import Staircase, find_staircases, shape_of

MAX_STAIRCASES = 6
WORST_ROWS = 10
HIST_RANGE = (-100.0, 200.0)
DENSE_STEP = 8  # a sweep whose values are at most this far apart is drawn as a staircase


@dataclass(frozen=True)
class Report:
    """report.md's text and its figures by file name."""

    markdown: str
    figures: dict[str, Figure]


def scatter_figure(scored: Scored) -> Figure:
    """Predicted against measured latency, log-log, one colour per device, with y = x and +-25%."""
    fig = Figure(figsize=(6.5, 6))
    ax = fig.add_subplot()
    measured, predicted = scored.measured_us, scored.predicted_us
    devices = [m.device for m in scored.timings.measurements]
    for device in dict.fromkeys(devices):
        sel = np.array([d == device for d in devices])
        ax.scatter(measured[sel], predicted[sel], s=4, alpha=0.35, label=f"{device} ({int(sel.sum())})", linewidths=0)
    lo = min(measured.min(), predicted.min()) / 1.5
    hi = max(measured.max(), predicted.max()) * 1.5
    line = np.array([lo, hi])
    ax.plot(line, line, "k-", lw=0.8, label="predicted = measured")
    ax.fill_between(line, line / 1.25, line * 1.25, color="grey", alpha=0.15, label="within 25%")
    ax.set(
        xscale="log",
        yscale="log",
        xlim=(lo, hi),
        ylim=(lo, hi),
        xlabel="measured latency (us)",
        ylabel="predicted latency (us)",
        title=f"{scored.timings.path.name}: predicted vs measured",
    )
    ax.grid(alpha=0.3, which="both", lw=0.4)
    ax.legend(fontsize=7, markerscale=3, loc="upper left")
    fig.tight_layout()
    return fig


def histogram_figure(scored: Scored) -> Figure:
    """Histogram of the signed error (predicted - measured) / measured, in percent."""
    err = scored.error_pct
    clipped = int(((err < HIST_RANGE[0]) | (err > HIST_RANGE[1])).sum())
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    ax.hist(np.clip(err, *HIST_RANGE), bins=75, range=HIST_RANGE, color="tab:blue", alpha=0.8)
    ax.axvline(0, color="k", lw=0.8)
    note = f"; {clipped} rows outside the range drawn at its edges" if clipped else ""
    ax.set(
        xlabel="error (%): (predicted - measured) / measured",
        ylabel="rows",
        title=f"{scored.timings.path.name}: signed error, {len(err)} rows{note}",
    )
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def staircase_figure(scored: Scored, stair: Staircase) -> Figure:
    """Measured and predicted latency along one sweep, overlaid: steps for dense sweeps, points otherwise."""
    fig = Figure(figsize=(9, 4.5))
    ax = fig.add_subplot()
    x = np.array(stair.values)
    dense = bool(np.all(np.diff(x) <= DENSE_STEP))
    for y, label in ((scored.measured_us[stair.rows], "measured"), (scored.predicted_us[stair.rows], "predicted")):
        if dense:
            ax.step(x, y, where="post", lw=1.2, label=label)
        else:
            ax.plot(x, y, "o-", ms=3, lw=1.0, label=label)
    ax.set(xlabel=stair.field, ylabel="latency (us)", ylim=(0, None))
    if not dense and x[-1] >= 32 * x[0]:
        ax.set_xscale("log", base=2)
    ax.set_title(stair.title, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}%"


def _group_table(title: str, key: str, groups: dict[str, GroupScore]) -> list[str]:
    lines = [f"## {title}", "", f"| {key} | rows | MAPE | median APE |", "|---|---:|---:|---:|"]
    lines += [f"| {k} | {g.rows} | {_pct(g.mape)} | {_pct(g.median_ape)} |" for k, g in groups.items()]
    return lines + [""]


def _selection_table(scored: Scored) -> list[str]:
    """Kernel choice or pricing (validation.selection) on the GEMM rows that record kernel and grid; none if none do."""
    try:
        rows = summary(priced_groups([scored.timings], scored.gpu_override))
    except WavecutError:
        return []

    lines = [
        "## Kernel choice or pricing",
        "",
        "GEMM rows that record their main kernel and grid, priced as the library launched them next to the "
        "model's own choice (at the spec's clock; validation/README.md, `selection`).",
        "",
        "| device (as in the file) | op | timing | rows | priced | " + " | ".join(FIGURE_HEADS) + " |",
        "|---|---|---|" + "---:|" * (2 + len(FIGURE_HEADS)),
    ]
    for r in rows:
        head = f"| {r['gpu']} | {r['op']} | {r['timing']} | {r['rows']} | {r['priced']} | "
        lines.append(head + " | ".join(shown_figures(r)) + " |")
    return lines + [""]


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _worst_rows(scored: Scored) -> list[str]:
    err = scored.error_pct
    lines = [
        "## Worst rows",
        "",
        "| row | device | dtype | op | measured us | predicted us | error | recorded kernel | predicted kernel |",
        "|---:|---|---|---|---:|---:|---:|---|---|",
    ]
    for i in np.argsort(-np.abs(err))[:WORST_ROWS]:
        m = scored.timings.measurements[i]
        shape = " ".join(f"{k}={v}" for k, v in shape_of(m.op).items())
        lines.append(
            f"| {m.row} | {m.device} | {m.dtype} | {m.op.kind} {shape} | {m.latency_us:.1f} | "
            f"{scored.predicted_us[i]:.1f} | {err[i]:+.0f}% | {_short(m.kernel) or '-'} | {scored.predicted_kernel[i]} |"
        )
    return lines + [""]


def build_report(scored: Scored) -> Report:
    """report.md (metrics, breakdowns, plots, worst rows) and its figures."""
    s = scored.summary
    figures: dict[str, Figure] = {
        "predicted_vs_measured.png": scatter_figure(scored),
        "error_histogram.png": histogram_figure(scored),
    }
    grid = (
        f"{_pct(s.grid_match)} of {s.grid_rows} rows with a recorded grid"
        if s.grid_match is not None
        else "no grids recorded"
    )
    lines = [
        f"# Validation report: {scored.timings.path.name}",
        "",
        f"{s.rows} rows from `{scored.timings.path}` ({scored.timings.format} format), predicted by gpusim on "
        f"{', '.join(sorted(set(scored.gpu)))}. APE = |predicted - measured| / measured.",
        "",
        "| metric | value |",
        "|---|---:|",
        f"| rows | {s.rows} |",
        f"| MAPE | {_pct(s.mape)} |",
        f"| median APE | {_pct(s.median_ape)} |",
        f"| p90 APE | {_pct(s.p90_ape)} |",
        f"| Spearman rank correlation | {'-' if s.spearman is None else f'{s.spearman:.3f}'} |",
        f"| predicted CTA count = recorded grid | {grid} |",
        "",
        *_group_table("By device", "device (as in the file)", s.by_device),
        *_group_table("By op", "op", s.by_op),
        *_group_table("By dtype", "dtype", s.by_dtype),
        *_group_table("By timing (what a row's time includes)", "timing", s.by_timing),
        *_selection_table(scored),
        "## Predicted vs measured",
        "",
        "![predicted vs measured](predicted_vs_measured.png)",
        "",
        "## Error histogram",
        "",
        "![error histogram](error_histogram.png)",
        "",
        "## Staircases",
        "",
    ]
    stairs = find_staircases(scored.timings.measurements)
    if not stairs:
        lines += [
            "No sweeps in this file (a sweep is 8 or more rows of one device, dtype and op that differ in "
            "one shape parameter only).",
            "",
        ]
    for n, stair in enumerate(stairs[:MAX_STAIRCASES], start=1):
        name = f"staircase_{n}.png"
        figures[name] = staircase_figure(scored, stair)
        lines += [f"![{stair.title}]({name})", ""]
    if len(stairs) > MAX_STAIRCASES:
        lines += [f"({len(stairs) - MAX_STAIRCASES} more sweeps not drawn; the longest are shown.)", ""]
    return Report(markdown="\n".join(lines + _worst_rows(scored)), figures=figures)
