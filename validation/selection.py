"""Kernel choice or pricing: where a GEMM prediction's error comes from, on rows that record their kernel.

For every row that records its main kernel and grid (NeuSight's linear and bmm files), the model prices the
launch the library made, the kernel of that name in the GPU's table split K-wise as its grid says
(gpusim.predict.LoweredOps.as_launched), next to the launch it chooses itself. Per GPU and op:

- kernel % and grid %: rows whose chosen kernel has the recorded name, and whose chosen grid is the recorded one;
- MAPE chosen and MAPE as launched, on the same rows: where the library's own launch is priced worse than
  the model's choice, the error is in the pricing (and the choice hides part of it); where it is priced
  better, the choice costs accuracy;
- faster %: rows where the model prices the library's launch faster than the one it chose (its choice is
  not the fastest it knows there: the preference margin for the library's default kernel, and its gates).

Constants: the shipped calibration, so on the shared files these are in-sample figures (leave-one-GPU-out:
validation.crossval). Any timings file whose rows record kernel and grid (`wavecut validate measure` writes
them) can be read the same way: `wavecut validate selection --data FILE`.

    python3 -m validation.selection [--kernels] [--json]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np

from gpusim.calibration import constants_vector
from gpusim.errors import WavecutError
from gpusim.predict import LoweredOps
from validation.calibrate import SHARED_MEASURED
from validation.readers import Measurement, Timings, read_timings
from validation.score import PREDICTION_FOR_TIMING, resolve_specs

# The shared files whose rows record their main kernel's name and grid.
RECORDED_KERNEL_FILES = ("neusight/linear.csv", "neusight/bmm.csv")
# The figures _cells gives per group of rows, after its counts `rows` and `priced` (None: nothing priced).
FIGURES = (
    "kernel_match",
    "grid_match",
    "grid_match_same_kernel",
    "mape_chosen",
    "mape_as_launched",
    "median_chosen",
    "median_as_launched",
    "launched_priced_faster",
)
FIGURE_HEADS = (
    "kernel %",
    "grid %",
    "grid % same kernel",
    "MAPE chosen",
    "MAPE as launched",
    "median chosen",
    "median as launched",
    "faster %",
)


def _mape(predicted: np.ndarray, measured: np.ndarray) -> float | None:
    """Mean absolute percentage error (None for no rows)."""
    return float(np.mean(np.abs(predicted / measured - 1)) * 100) if measured.size else None


def _median_ratio(predicted: np.ndarray, measured: np.ndarray) -> float | None:
    """Median predicted / measured (None for no rows)."""
    return float(np.median(predicted / measured)) if measured.size else None


def priced_groups(files: list[Timings], gpu: str | None = None) -> list[dict]:
    """Per (GPU, op kind, dtype, timing), over the rows that record kernel and grid: the measured time, the
    prediction of the chosen launch and of the recorded one (nan where it cannot be priced), recorded and
    chosen kernel names and grids. `gpu`: price every row on this spec instead of the file's device names.
    Only ops that are one GEMM launch count (linear, bmm); a WavecutError names the files if none records both."""
    groups: dict[tuple[str, str, str, str], list[Measurement]] = defaultdict(list)
    specs = {}
    for timings in files:
        specs.update(resolve_specs(timings, gpu))
        for m in timings.measurements:
            if m.kernel and m.grid:
                groups[(m.device, m.op.kind, m.dtype, m.timing)].append(m)
    out = []
    for (device, kind, dtype, timing), rows in sorted(groups.items()):
        spec = specs[device]
        lowered = LoweredOps([m.op for m in rows], spec, dtype)
        single = lowered.single_gemm()  # a conv's main kernel is one of several launches: not priced here
        if not single.all():
            rows = [m for m, keep in zip(rows, single) if keep]
            if not rows:
                continue
            lowered = LoweredOps([m.op for m in rows], spec, dtype)
        consts = constants_vector(spec.architecture)
        host = lowered.host_overhead(consts) if PREDICTION_FOR_TIMING[timing] == "isolated_us" else 0.0
        prediction = lowered.predict(consts)
        chosen = prediction.main_launches()
        out.append(
            {
                "gpu": device,
                "op": kind,
                "dtype": dtype,
                "timing": timing,
                "measured_us": np.array([m.latency_us for m in rows]),
                "chosen_us": prediction.gpu_us + host,
                "as_launched_us": lowered.as_launched([m.kernel for m in rows], [m.grid for m in rows], consts) + host,
                "recorded_kernel": [m.kernel for m in rows],
                "chosen_kernel": [k.kernel for k in chosen],
                "recorded_grid": np.array([m.grid for m in rows]),
                "chosen_grid": np.array([k.grid for k in chosen]),
            }
        )
    if not out:
        names = ", ".join(str(t.path) for t in files)
        raise WavecutError(
            f"{names}: no GEMM row (linear, bmm) records its main kernel's name and grid (columns kernel, grid_x/y/z)"
        )
    return out


def _cells(g: dict, mask: np.ndarray) -> dict:
    """The summary figures of a group's rows under `mask` (None where no row could be priced)."""
    meas, chosen, launched = g["measured_us"][mask], g["chosen_us"][mask], g["as_launched_us"][mask]
    priced = np.isfinite(launched)
    same_kernel = np.array([a == b for a, b in zip(g["recorded_kernel"], g["chosen_kernel"])])[mask]
    same_grid = g["recorded_grid"][mask] == g["chosen_grid"][mask]
    return {
        "rows": int(mask.sum()),
        "priced": int(priced.sum()),
        "kernel_match": float(np.mean(same_kernel) * 100),
        "grid_match": float(np.mean(same_grid) * 100),
        # grid agreement where the tile is right: what is left is the split-K factor (and batch layout)
        "grid_match_same_kernel": float(np.mean(same_grid[same_kernel]) * 100) if same_kernel.any() else None,
        "mape_chosen": _mape(chosen[priced], meas[priced]),
        "mape_as_launched": _mape(launched[priced], meas[priced]),
        "median_chosen": _median_ratio(chosen[priced], meas[priced]),
        "median_as_launched": _median_ratio(launched[priced], meas[priced]),
        "launched_priced_faster": float(np.mean(launched[priced] < chosen[priced]) * 100) if priced.any() else 0.0,
    }


def _key(group: dict) -> dict:
    """What a group of rows is: GPU (as in the file), op kind, dtype and timing kind."""
    return {k: group[k] for k in ("gpu", "op", "dtype", "timing")}


def summary(groups: list[dict]) -> list[dict]:
    """One row per GPU, op kind, dtype and timing kind: _cells over all its recorded rows."""
    return [{**_key(g), **_cells(g, np.ones(len(g["measured_us"]), bool))} for g in groups]


def by_kernel(groups: list[dict]) -> list[dict]:
    """One row per GPU, op kind and recorded kernel: _cells over the rows that launched it."""
    rows = []
    for g in groups:
        names = np.array(g["recorded_kernel"])
        for name in sorted(set(names), key=lambda n: -int(np.sum(names == n))):
            rows.append({**_key(g), "kernel": name, **_cells(g, names == name)})
    return rows


def shown_figures(row: dict) -> list[str]:
    """A summary row's FIGURES as printed: percentages to 0.1, median ratios to 0.001, '-' where None."""
    return ["-" if row[k] is None else f"{row[k]:.3f}" if k.startswith("median") else f"{row[k]:.1f}" for k in FIGURES]


def _print(rows: list[dict], first: str) -> None:
    """The table: the leading column `first` (GPU or kernel), then the figures."""
    print(
        f"{first:40s}{'op':7s}{'timing':11s}{'rows':>6s}{'priced':>7s}{'kernel %':>9s}{'grid %':>7s}{'same k.':>8s}"
        f"{'MAPE chosen':>12s}"
        f"{'as launched':>12s}{'med chosen':>11s}{'as launched':>12s}{'faster %':>9s}"
    )
    for r in rows:
        lead = r.get("kernel", r["gpu"])
        cells = "".join(f"{c:>{w}s}" for c, w in zip(shown_figures(r), (9, 7, 8, 12, 12, 11, 12, 9)))
        print(f"{lead[-40:]:40s}{r['op']:7s}{r['timing']:11s}{r['rows']:6d}{r['priced']:7d}{cells}")


def main() -> None:
    """Print the per-GPU table (per recorded kernel with --kernels; one JSON object last with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", action="store_true", help="one row per GPU, op and recorded kernel")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    groups = priced_groups([read_timings(SHARED_MEASURED / f) for f in RECORDED_KERNEL_FILES])
    rows = summary(groups)
    _print(rows, "GPU")
    kernels = by_kernel(groups) if args.kernels else []
    if kernels:
        print()
        _print([{**r, "kernel": f"{r['gpu'].split()[-1]} {r['kernel']}"} for r in kernels], "GPU, recorded kernel")
    if args.json:
        print(json.dumps({"by_gpu": rows, "by_kernel": kernels}))


if __name__ == "__main__":
    main()
