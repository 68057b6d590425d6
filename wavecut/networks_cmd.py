"""`wavecut validate networks`: the planner-based predictor for whole-network timing rows.

validation never imports planner, so the glue that traces torchvision models for
validation.networks lives here, where both may be imported.
"""

from __future__ import annotations

import sys
import warnings
from collections import OrderedDict
from pathlib import Path

from gpusim.atomic_write import write_text_atomic
from gpusim.errors import SpecError, WavecutError
from gpusim.spec import GpuSpec, load_spec
from validation.networks import NetworkRow, NetworkSummary, ScoredNetworks
from wavecut.output import console, print_group_tables, print_json

# Traced networks kept at once: rows of one model are usually adjacent, and a traced model holds its weights.
CACHE_SIZE = 2


class NetworkPredictor:
    """predict(row) -> microseconds: each (model, input size) is traced once and re-priced for every
    batch, precision, mode and GPU of its rows. `gpu` replaces every row's device. Warnings are
    collected once each in `warnings`."""

    def __init__(self, gpu: str | None = None) -> None:
        self.gpu = gpu
        self.warnings: dict[str, None] = {}
        self._networks: OrderedDict[tuple[str, int, int], object] = OrderedDict()

    def _spec(self, row: NetworkRow) -> GpuSpec:
        try:
            return load_spec(self.gpu or row.device)
        except SpecError:
            if self.gpu:
                raise
            raise WavecutError(
                f"unknown GPU {row.device!r}: add a spec whose aliases include it (hw_specs/README.md), "
                f"or pass --gpu NAME to score every row on one spec"
            ) from None

    def _network(self, row: NetworkRow):
        from planner.network import Network

        key = (row.model, row.channels, row.img_size)
        if key not in self._networks:
            self._networks[key] = Network.load(row.model, (row.channels, row.img_size, row.img_size))
            while len(self._networks) > CACHE_SIZE:
                self._networks.popitem(last=False)
        self._networks.move_to_end(key)
        return self._networks[key]

    def __call__(self, row: NetworkRow) -> float:
        """Predicted time of one row, the same kind of time as its `timing` column."""
        from planner.network import PrecisionWarning
        from planner.trace import UnmappedOpWarning

        spec = self._spec(row)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            network = self._network(row)
            pred = network.predict(spec, row.batch, row.dtype, row.mode, row.allow_tf32_matmul)
        for w in caught:  # wavecut's own warnings only (torchvision's init notices are not about the prediction)
            if issubclass(w.category, UnmappedOpWarning):
                self.warnings.setdefault(f"{row.model}: {w.message}")
            elif issubclass(w.category, PrecisionWarning):
                self.warnings.setdefault(str(w.message))
        return pred.step_us if row.timing == "host_wall_step" else pred.total_us


def _print_summary(summary: NetworkSummary) -> None:
    s = summary
    rho = "-" if s.spearman is None else f"{s.spearman:.3f}"
    console.print(
        f"[bold]{s.rows}[/bold] rows: MAPE {s.mape:.1f}%, median APE {s.median_ape:.1f}%, "
        f"p90 APE {s.p90_ape:.1f}%, Spearman {rho}",
        highlight=False,
    )
    print_group_tables((("device (as in the file)", s.by_device), ("model family", s.by_family)))


def score_network_file(data: Path, gpu: str | None, as_json: bool, report: Path | None) -> ScoredNetworks:
    """Read, predict and score a network timing file; print the metrics (or one JSON object) and
    write report.md into `report` when given."""
    from validation.networks import network_report, read_network_timings, score_networks

    predictor = NetworkPredictor(gpu)
    scored = score_networks(read_network_timings(data), predictor)
    for line in predictor.warnings:
        print(f"wavecut: warning: {line}", file=sys.stderr)
    if as_json:
        print_json(scored.summary.model_dump())
    else:
        _print_summary(scored.summary)
    if report is not None:
        path = write_text_atomic(report / "report.md", network_report(scored) + "\n")
        if not as_json:
            console.print(f"wrote {path}")
    return scored
