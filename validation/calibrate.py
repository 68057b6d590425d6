"""Fit the simulator's efficiency constants on recorded timings, deterministically.

Constants are shared by all GPUs (hw_specs/calibration/default.yaml); a few (the library
kernels' efficiencies) are refined per architecture family where the training data has that
family, and apply to every GPU of the family. A family without data uses the nearest
family's (validation/crossval.py measures exactly that case, one GPU left out at a time).

    python3 -m validation.calibrate            # fit on ../shared/data/measured, print the constants
    python3 -m validation.calibrate --write    # ... and write hw_specs/calibration/*.yaml
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from scipy.optimize import minimize

from gpusim.calibration import (
    CONSTANT_NAMES,
    FAMILY,
    SHARED,
    STRIP,
    TENSOR,
    Constants,
    bounds,
    fit_group,
    merge_families,
    nearest_family,
    starting_point,
)
from gpusim.predict import LoweredOps
from gpusim.spec import GpuSpec
from hw_specs import CALIBRATION_DIR
from validation.harness import cached_conv_plans
from validation.readers import read_timings
from validation.score import PREDICTION_FOR_TIMING, resolve_specs

REPO = Path(__file__).resolve().parents[1]
SHARED_MEASURED = REPO.parent / "shared" / "data" / "measured"
NEUSIGHT_FILES = (
    "neusight/linear.csv",
    "neusight/bmm.csv",
    "neusight/conv/Tesla_P100-PCIE-16GB.csv",
    "neusight/conv/Tesla_P4.csv",
    "neusight/conv/Tesla_T4.csv",
    "neusight/conv/Tesla_V100-PCIE-32GB.csv",
)
# FP16 tensor-core GEMMs timed as kernel durations (vidur/README.md): A100 80GB and A40.
VIDUR_FILES = ("vidur/vidur_fp16_linear_a100.csv", "vidur/vidur_fp16_linear_a40.csv")
# Constants fitted on all GPUs together, then the operand-strip traffic of deep-K linear GEMMs
# (gpusim.engine.operand_strip_time) on the linear sets, then those refined per family: the groups,
# bounds and starting points are in gpusim.calibration.Constants.
# The SIMT (GEMM) efficiency is shared: fitted per family it did not transfer to a GPU left out
# (leave-one-GPU-out linear MAPE: T4 20.5 -> 13.8, A100 7.7 -> 6.0, P4 15.0 -> 14.5; P100 19.3 -> 22.0,
# V100 13.5 -> 14.0; bmm better on every GPU); cuDNN's Winograd kernels do differ per family.
# The PyTorch 2.1 plan-cache cost (validation/harness.py) is a property of the host that measured the
# family's convolutions, not of the GPU, but shared it was fitted to no host (0.074 us per entry, where
# the four hosts' own slopes are 0.054-0.158) and the family's cuDNN efficiencies absorbed the rest:
# fitted with them, leave-one-GPU-out conv MAPE P100 16.0 -> 10.5, P4 15.4 -> 13.4, T4 10.2 -> 11.9,
# V100 22.6 -> 13.1. It never enters `wavecut predict`.
SHARED_FIT, STRIP_FIT, FAMILY_FIT = fit_group(SHARED), fit_group(STRIP), fit_group(FAMILY)
# Tensor-core GEMMs (tensor_efficiency, tensor_dram_efficiency) are fitted per family on the family's
# tensor-core sets, after the others (which they do not touch); a family without tensor-core data uses
# the nearest family's (gpusim.calibration.merge_families).
TENSOR_FIT = fit_group(TENSOR)
# The family constants are cuDNN kernel efficiencies and its measuring host's cost, so a family gets its
# own only where the training data has its convolutions; any other family uses the nearest family that
# has them (Ampere: Turing's).
FAMILY_FIT_OP = "conv2d"
# Where every fit starts (so a refit never depends on the files it overwrites).
STARTING_POINT = starting_point()
# Nelder-Mead restarts: in 12 dimensions (before the L2 factor went) one run stopped in a collapsed simplex (MAPE
# 13.3%); one restart reaches 12.6%, a second changes nothing; Powell's method reached 12.8%.
RESTARTS = 1
# Fit on every n-th row of each (GPU, op, dtype) set: deterministic and 3-4x faster.
ROW_STRIDE = 3
# The vidur sets have 19-27k rows of smooth shapes: every 10th row fits as well.
VIDUR_STRIDE = 10


@dataclass
class DataSet:
    """The rows of one GPU, op kind and dtype, lowered once for fast re-pricing."""

    device: str
    spec: GpuSpec
    op: str
    dtype: str
    timing: str  # what the rows' times include (validation.readers.TIMINGS)
    lowered: LoweredOps
    measured_us: np.ndarray
    grids: np.ndarray  # recorded CTAs of the main kernel, -1 where not recorded

    @property
    def family(self) -> str:
        """Architecture family of the GPU."""
        return self.spec.architecture

    @property
    def tensor(self) -> bool:
        """Whether the set's GEMMs run on tensor cores."""
        return self.spec.uses_tensor_cores(self.dtype)

    def predicted(self, consts: np.ndarray) -> np.ndarray:
        """The prediction of the rows' kind under `consts`: GPU time, plus the host overhead of one eager
        call where the rows time an op alone (validation.score.PREDICTION_FOR_TIMING)."""
        gpu = self.lowered.op_times(consts)
        return gpu + self.lowered.host_overhead(consts) if PREDICTION_FOR_TIMING[self.timing] == "isolated_us" else gpu


def load_datasets(paths: list[Path], stride: int = 1) -> list[DataSet]:
    """Read timing files and group their rows by (device, op kind, dtype, timing)."""
    groups: dict[tuple[str, str, str, str], list] = {}
    specs: dict[str, GpuSpec] = {}
    for path in paths:
        timings = read_timings(path)
        specs.update(resolve_specs(timings))
        for m, plans in zip(timings.measurements, cached_conv_plans(timings.measurements)):
            groups.setdefault((m.device, m.op.kind, m.dtype, m.timing), []).append((m, plans))
    sets = []
    for (device, op, dtype, timing), pairs in sorted(groups.items()):
        rows = [m for m, _ in pairs[::stride]]
        lowered = LoweredOps([m.op for m in rows], specs[device], dtype, cached_plans=[p for _, p in pairs[::stride]])
        sets.append(
            DataSet(
                device,
                specs[device],
                op,
                dtype,
                timing,
                lowered,
                np.array([m.latency_us for m in rows]),
                np.array([-1 if m.grid is None else m.grid for m in rows]),
            )
        )
    return sets


def mape(sets: list[DataSet], consts_for: dict[str, np.ndarray]) -> dict[tuple[str, str], float]:
    """MAPE in percent per (device, op) with each family's constants."""
    return {
        (s.device, s.op): float(np.mean(np.abs(s.predicted(consts_for[s.family]) / s.measured_us - 1)) * 100)
        for s in sets
    }


def _fit(sets: list[DataSet], start: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Nelder-Mead on the mean of the data sets' MAPEs over log-constants (kernel choice makes the
    objective piecewise, so a derivative-free search), restarted RESTARTS times; deterministic from `start`."""
    if not names:
        return start
    search = {"maxfev": 80 * len(names), "xatol": 1e-3, "fatol": 1e-5}
    idx = np.array([CONSTANT_NAMES.index(n) for n in names])
    low, high = np.array([bounds(n) for n in names]).T  # the schema's: a fit never leaves what loading accepts

    def consts(x: np.ndarray) -> np.ndarray:
        c = start.copy()
        c[idx] = np.clip(np.exp(x), low, high)
        return c

    def objective(x: np.ndarray) -> float:
        c = consts(x)
        return float(np.mean([np.mean(np.abs(s.predicted(c) / s.measured_us - 1)) for s in sets]))

    x0 = np.log(np.maximum(start[idx], 1e-2))
    result = minimize(objective, x0, method="Nelder-Mead", options=search)
    evaluations = result.nfev
    for _ in range(RESTARTS):  # a fresh simplex around the result escapes the collapsed one
        result = minimize(objective, result.x, method="Nelder-Mead", options=search)
        evaluations += result.nfev
    print(
        f"fit {len(names)} constants on {len(sets)} sets: {evaluations} evaluations, mean MAPE {100 * result.fun:.1f}%"
    )
    return consts(result.x)


Fitted = dict[str, dict[str, float]]  # family -> the constants fitted for it, by name


def _named(c: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    return {n: float(c[CONSTANT_NAMES.index(n)]) for n in names}


def fit(sets: list[DataSet], fixed: dict[str, float] | None = None) -> tuple[np.ndarray, Fitted]:
    """(shared constants, {family: its fitted constants by name}) fitted on `sets`: the shared and strip
    constants on the CUDA-core sets, cuDNN's per family with conv data, tensor-core ones per family with
    tensor-core data. `fixed` holds constants at given values and out of every fit (a term switched
    off: validation.crossval --without)."""
    fixed = fixed or {}
    start = np.array([fixed.get(n, STARTING_POINT[n]) for n in CONSTANT_NAMES], dtype=np.float64)
    shared_fit, strip_fit, family_fit, tensor_fit = (
        tuple(n for n in group if n not in fixed) for group in (SHARED_FIT, STRIP_FIT, FAMILY_FIT, TENSOR_FIT)
    )
    simt = [s for s in sets if not s.tensor]
    shared = _fit(simt, start, shared_fit)
    shared = _fit([s for s in simt if s.op == "linear"], shared, strip_fit)
    families: Fitted = {}
    for family in sorted({s.family for s in simt if s.op == FAMILY_FIT_OP}):
        families[family] = _named(_fit([s for s in simt if s.family == family], shared, family_fit), family_fit)
    for family in sorted({s.family for s in sets if s.tensor}):
        tensor = _fit([s for s in sets if s.tensor and s.family == family], shared, tensor_fit)
        families.setdefault(family, {}).update(_named(tensor, tensor_fit))
    return shared, families


def constants_by_family(shared: np.ndarray, families: Fitted, wanted: set[str]) -> dict[str, np.ndarray]:
    """Constants each family in `wanted` would use: shared, each fitted constant taken from the nearest
    family that fitted it (gpusim.calibration.merge_families, as loading does)."""
    base = _named(shared, CONSTANT_NAMES)
    return {f: np.array([merge_families(base, families, f)[n] for n in CONSTANT_NAMES]) for f in wanted}


def source_family(family: str, families: Fitted, group: tuple[str, ...]) -> str:
    """The family whose fit of `group` a family uses (itself, the nearest, or 'default')."""
    return nearest_family(family, [f for f, c in families.items() if group[0] in c])


def _write(shared: np.ndarray, families: Fitted, sets: list[DataSet]) -> None:
    from gpusim.atomic_write import write_text_atomic

    for c in constants_by_family(shared, families, set(families) | {"default"}).values():  # what is written loads
        Constants(**{n: round(float(v), 4) for n, v in zip(CONSTANT_NAMES, c)})

    files = sorted({f"../shared/data/measured/{f}" for f in (*NEUSIGHT_FILES, *VIDUR_FILES)})
    command = "python3 -m validation.calibrate --write"
    header = "# Written by validation/calibrate.py: do not edit by hand.\n"
    doc = {
        "family": "default",
        "fitted_on": files + sorted({s.device for s in sets}),
        "fit_command": command,
        "constants": {n: round(float(v), 4) for n, v in zip(CONSTANT_NAMES, shared)},
    }
    write_text_atomic(CALIBRATION_DIR / "default.yaml", header + yaml.safe_dump(doc, sort_keys=False))
    for stale in CALIBRATION_DIR.glob("*.yaml"):  # a family no longer fitted falls back to its nearest
        if stale.stem not in {"default", "families", *families}:
            stale.unlink()
    for family, c in families.items():
        devices = sorted({s.device for s in sets if s.family == family})
        doc = {
            "family": family,
            "fitted_on": files + devices,
            "fit_command": command,
            "constants": {n: round(v, 4) for n, v in c.items()},
        }
        write_text_atomic(CALIBRATION_DIR / f"{family}.yaml", header + yaml.safe_dump(doc, sort_keys=False))


def training_sets() -> list[DataSet]:
    """Every shared timing file, every ROW_STRIDE-th (vidur: VIDUR_STRIDE-th) row of each set."""
    return load_datasets([SHARED_MEASURED / f for f in NEUSIGHT_FILES], ROW_STRIDE) + load_datasets(
        [SHARED_MEASURED / f for f in VIDUR_FILES], VIDUR_STRIDE
    )


def shared_timing_files() -> list[Path]:
    """Every shared timing file (NeuSight's, then Vidur's)."""
    return [SHARED_MEASURED / f for f in (*NEUSIGHT_FILES, *VIDUR_FILES)]


def test_sets() -> list[DataSet]:
    """Every row of every shared timing file."""
    return load_datasets(shared_timing_files())


def main() -> None:
    """Fit on the shared NeuSight data, print per-set MAPE, optionally write the calibration files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write hw_specs/calibration/*.yaml")
    args = parser.parse_args()
    train, full = training_sets(), test_sets()
    shared, families = fit(train)
    per = constants_by_family(shared, families, {s.family for s in full})
    for name, value in zip(CONSTANT_NAMES, shared):
        print(f"{name:32s} {value:10.4f}")
    for family, c in families.items():
        print(family, {n: round(v, 4) for n, v in c.items()})
    print(f"{'device':28s}{'op':8s}{'MAPE %':>8s}")
    for (device, op), value in mape(full, per).items():
        print(f"{device:28s}{op:8s}{value:8.1f}")
    if args.write:
        _write(shared, families, train)


if __name__ == "__main__":
    main()
