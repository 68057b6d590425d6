"""Latency lookup tables: per channel group, the predicted network latency at each candidate width, the others full.

This is the table HALP- and NetAdapt-style pruning measures on the target GPU, predicted instead:
one Network.predict_many call prices every (group, width) row. Candidate widths are each group's step
edges (the widest width of each latency step among the aligned widths from the planner's minimum) or
every `step` channels from the minimum. Format (docs/sweeps.md): JSON with the setting, the spec hash and
per group its widths and latencies, or CSV with one row per (group, width).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import gpusim
from gpusim.atomic_write import write_text_atomic
from gpusim.errors import WavecutError
from planner.candidates import WidthModel, alignment, allowed_widths, candidate_widths, group_widths, minimum_width
from planner.groups import ChannelGroup
from planner.network import Network, Setting
from planner.plan_model import wavecut_version

FORMAT = "wavecut-lut/1"
CSV_COLUMNS = ("group", "full_width", "width", "latency_us", "saved_us", "locked")


@dataclass(frozen=True)
class GroupTable:
    """One group's row of the table: its layers, and the network latency at each candidate width."""

    name: str
    full_width: int
    locked: str
    producers: list[str]
    consumers: list[str]
    widths: list[int]  # ascending, full width last
    latency_us: list[float]  # whole network, this group at each width and every other group at full width


@dataclass(frozen=True)
class LatencyTable:
    """A latency lookup table of one model on one setting."""

    format: str
    model: str
    input_shape: list[int]
    gpu: str
    gpu_spec_hash: str
    batch: int
    dtype: str
    mode: str
    candidates: str  # "step edges" or "every N channels"
    wavecut_version: str
    full_latency_us: float
    groups: list[GroupTable]

    def to_json(self) -> str:
        """The table as JSON text."""
        return json.dumps(asdict(self), indent=1)

    def to_csv(self) -> str:
        """The table as CSV text: one row per (group, width); saved_us is the full latency less the row's."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for g in self.groups:
            for w, t in zip(g.widths, g.latency_us):
                writer.writerow((g.name, g.full_width, w, repr(t), repr(self.full_latency_us - t), g.locked))
        return buf.getvalue()

    def write(self, path: str | Path) -> Path:
        """Write the table as JSON or CSV, by the file's suffix (atomically)."""
        as_json = check_out(path) == ".json"
        return write_text_atomic(path, self.to_json() if as_json else self.to_csv())


def check_out(path: str | Path) -> str:
    """The table file's suffix (.json or .csv), else a one-line error."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".json", ".csv"):
        raise WavecutError(f"--out: {path}: the table is written as .json or .csv, got {suffix or 'no suffix'}")
    return suffix


def group_candidates(
    network: Network, groups: list[ChannelGroup], setting: Setting, step: int | None = None
) -> list[list[int]]:
    """Each group's candidate widths: its step edges (others at full width), or every `step` channels from
    the planner's minimum width; always with the full width; locked groups: the full width only."""
    align = alignment(setting.dtype)
    if step is not None:
        if step < 1:
            raise WavecutError(f"--step: must be at least 1 channel, got {step}")
        steps = [g.width_multiple(step) for g in groups]
        return [
            allowed_widths(g.full_width, s, minimum_width(g.full_width, s)) if g.prunable else [g.full_width]
            for g, s in zip(groups, steps)
        ]
    allowed = [group_widths(g, align) for g in groups]
    model = WidthModel(network, groups, setting.gpu, setting.batch, setting.dtype, setting.mode)
    full = np.array([g.full_width for g in groups], dtype=np.int64)
    return [sorted({*c, g.full_width}) for c, g in zip(candidate_widths(model, allowed, full), groups)]


def latency_table(
    network: Network,
    groups: list[ChannelGroup],
    setting: Setting,
    input_shape: tuple[int, ...],
    step: int | None = None,
) -> LatencyTable:
    """The lookup table of a traced network on one setting (one predict_many call for every row)."""
    cands = group_candidates(network, groups, setting, step)
    full = np.array([g.full_width for g in groups], dtype=np.int64)
    rows = [full]
    for g, widths in enumerate(cands):
        for w in widths:
            row = full.copy()
            row[g] = w
            rows.append(row)
    totals = network.predict_many([setting], np.array(rows), groups)[0]
    spec = gpusim.load_spec(setting.gpu)
    tables, at = [], 1
    for g, widths in zip(groups, cands):
        lat = totals[at : at + len(widths)].tolist()
        at += len(widths)
        tables.append(GroupTable(g.name, g.full_width, g.locked, list(g.producers), list(g.consumers), widths, lat))
    return LatencyTable(
        format=FORMAT,
        model=network.name,
        input_shape=list(input_shape),
        gpu=spec.name,
        gpu_spec_hash=spec.content_hash,
        batch=setting.batch,
        dtype=setting.dtype,
        mode=setting.mode,
        candidates="step edges" if step is None else f"every {step} channels",
        wavecut_version=wavecut_version(),
        full_latency_us=float(totals[0]),
        groups=tables,
    )
