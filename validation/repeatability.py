"""The error floor of a timing file: how far rows of one op differ from each other, batch aside.

GEMM rows (linear, bmm, conv) that run the same kernel on the same per-sample problem (the op with
its batch set to 1) and launch at least MIN_CTAS_PER_SM CTAs per SM fill many full waves, so their time per batch
sample should be one number: the tail of the last wave is at most a few percent of them. The
*oracle* predicts each such row as its group's MAPE-best time per sample (the median of the times
weighted by their inverses) times its batch. No model that gives one time per sample to one kernel
on one per-sample shape (gpusim included) can beat it on those rows, so its MAPE is the floor of
what the rows can show; where it is far above the usual 1-3 %, the recording harness
(clock state, power limit) moved between rows. docs/accuracy.md reads the shared data with it.

    python3 -m validation.repeatability [--json] [FILE.csv ...]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from gpusim.spec import load_spec
from validation.calibrate import shared_timing_files
from validation.readers import Measurement, read_timings

# A row enters a group only with at least this many CTAs per SM in its recorded grid: with b CTAs
# resident per SM (<= 8 on the kernels here) that is at least 4 full waves, so wave quantisation
# moves its time per sample by at most a quarter of a wave and usually by far less.
MIN_CTAS_PER_SM = 32
# Groups need this many rows to have a median worth predicting from.
MIN_GROUP_ROWS = 3


class FloorRow(BaseModel):
    """The oracle's error on one device, op and dtype."""

    device: str
    op: str
    dtype: str
    rows: int  # rows in groups (the rows scored)
    groups: int
    oracle_mape: float  # percent
    oracle_p90_ape: float  # percent


def group_key(m: Measurement) -> tuple:
    """What rows must share to run at one time per batch sample: device, dtype, timing, kernel and
    the op with its batch set to 1."""
    return (m.device, m.dtype, m.timing, m.kernel, replace(m.op, batch=1, name=""))


def mape_best(values: np.ndarray) -> float:
    """The one prediction with the least mean |prediction / value - 1|: the median of the values,
    each weighted by its inverse (the summed weights reach half the total there)."""
    order = np.sort(values)
    weights = np.cumsum(1.0 / order)
    return float(order[np.searchsorted(weights, weights[-1] / 2.0)])


def oracle_floor(measurements: Iterable[Measurement]) -> list[FloorRow]:
    """Per device, op and dtype: the oracle's MAPE on the rows that fill many full waves."""
    groups: dict[tuple, list[Measurement]] = defaultdict(list)
    for m in measurements:
        if m.op.gemm and m.grid is not None and m.kernel and m.grid >= MIN_CTAS_PER_SM * load_spec(m.device).sm_count:
            groups[group_key(m)].append(m)
    apes: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for rows in groups.values():
        if len(rows) < MIN_GROUP_ROWS:
            continue
        per_sample = np.array([m.latency_us / m.op.batch for m in rows])
        best = mape_best(per_sample)
        key = (rows[0].device, rows[0].op.kind, rows[0].dtype)
        apes[key] += list(np.abs(best / per_sample - 1.0) * 100.0)
        counts[key] += 1
    return [
        FloorRow(
            device=d,
            op=op,
            dtype=dt,
            rows=len(v),
            groups=counts[(d, op, dt)],
            oracle_mape=float(np.mean(v)),
            oracle_p90_ape=float(np.percentile(v, 90)),
        )
        for (d, op, dt), v in sorted(apes.items())
    ]


def main() -> None:
    """Print the oracle floor of the given timing files (default: the shared ones)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    measurements = [m for f in (args.files or shared_timing_files()) for m in read_timings(f).measurements]
    floor = oracle_floor(measurements)
    if args.json:
        print(json.dumps([r.model_dump() for r in floor], indent=1))
        return
    table = Table(title=f"oracle floor (rows with >= {MIN_CTAS_PER_SM} CTAs per SM, groups of >= {MIN_GROUP_ROWS})")
    for col in ("device", "op", "dtype", "rows", "groups", "oracle MAPE %", "p90 APE %"):
        table.add_column(col)
    for r in floor:
        table.add_row(
            r.device, r.op, r.dtype, str(r.rows), str(r.groups), f"{r.oracle_mape:.1f}", f"{r.oracle_p90_ape:.1f}"
        )
    Console().print(table)


if __name__ == "__main__":
    main()
