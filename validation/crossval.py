"""Leave-one-GPU-out cross-validation of the calibration: fit on every shared GPU but one, score the one left out.

The left-out GPU's family constants come from the other GPUs of its family if any,
else from the nearest family (exactly what a new GPU with only a spec file gets).

    python3 -m validation.crossval [--json] [--jobs N] [--without CONSTANT ...] [--hold CONSTANT=VALUE ...]

`--without` switches a fitted term off in every fold (its constant held at the schema's `off` value,
gpusim.calibration.switchable, and out of the fit): whether the term earns its place on GPUs it was not
fitted on is the difference to the plain run. `--hold` holds any constant at a given value instead of
fitting it (e.g. a datasheet number in place of a fitted efficiency). `--jobs N` runs the folds in N
forked processes: the same table (every fit is deterministic), about N times sooner.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing

import numpy as np

from gpusim.calibration import CONSTANT_NAMES, bounds, switchable
from validation.calibrate import (
    FAMILY_FIT,
    TENSOR_FIT,
    DataSet,
    constants_by_family,
    fit,
    source_family,
    test_sets,
    training_sets,
)

# Targets per GPU left out (issues 4 and 15): MAPE at most, GEMM grid agreement at least.
TARGETS = {"linear": 10.0, "bmm": 12.0, "conv2d": 15.0, "grid": 80.0}


def fold(left_out: str, train: list[DataSet], test: list[DataSet], fixed: dict[str, float] | None = None) -> dict:
    """Fit without `left_out` (and with the `fixed` constants held), then MAPE per op and GEMM grid
    agreement on its rows."""
    shared, families = fit([s for s in train if s.device != left_out], fixed)
    own = [s for s in test if s.device == left_out]
    family = own[0].family
    consts = constants_by_family(shared, families, {family})[family]
    row: dict = {
        "gpu": left_out,
        "dtype": ",".join(sorted({s.dtype for s in own})),
        "family": family,
        "constants_from": source_family(family, families, FAMILY_FIT),
        "tensor_from": source_family(family, families, TENSOR_FIT),
    }
    matched = recorded = 0
    for s in own:
        row[f"{s.op}_mape"] = float(np.mean(np.abs(s.predicted(consts) / s.measured_us - 1)) * 100)
        has = s.grids >= 0
        if s.op in ("linear", "bmm") and has.any():
            grids = np.array([k.grid for k in s.lowered.predict(consts).main_launches()])
            matched += int(np.sum(grids[has] == s.grids[has]))
            recorded += int(np.sum(has))
    row["gemm_grid_match"] = 100.0 * matched / recorded if recorded else None
    return row


# The training and test sets of a forked fold worker: handed over at fork, never pickled.
_WORKER_SETS: tuple[list[DataSet], list[DataSet]] = ([], [])


def _start_worker(train: list[DataSet], test: list[DataSet]) -> None:
    global _WORKER_SETS
    _WORKER_SETS = (train, test)


def _worker_fold(job: tuple[str, dict[str, float]]) -> dict:
    left_out, fixed = job
    return fold(left_out, *_WORKER_SETS, fixed)


def run_folds(
    gpus: list[str], train: list[DataSet], test: list[DataSet], fixed: dict[str, float], jobs: int = 1
) -> list[dict]:
    """fold() for each GPU in `gpus`, in that order; with jobs > 1 in forked worker processes where the
    platform can fork (the sets pass to the workers at fork), else one after another."""
    if jobs <= 1 or len(gpus) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [fold(gpu, train, test, fixed) for gpu in gpus]
    context = multiprocessing.get_context("fork")
    with context.Pool(min(jobs, len(gpus)), initializer=_start_worker, initargs=(train, test)) as pool:
        return pool.map(_worker_fold, [(gpu, fixed) for gpu in gpus], chunksize=1)


def _held(text: str) -> tuple[str, float]:
    """Parse --hold's CONSTANT=VALUE: a known constant and a number inside its schema bounds."""
    name, _, value = text.partition("=")
    if name not in CONSTANT_NAMES:
        raise argparse.ArgumentTypeError(f"unknown constant {name!r}; allowed: {', '.join(CONSTANT_NAMES)}")
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: VALUE must be a number (CONSTANT=VALUE)") from None
    low, high = bounds(name)
    if not low <= number <= high:
        raise argparse.ArgumentTypeError(f"{name} = {number:g} is outside its bounds [{low:g}, {high:g}]")
    return name, number


def main() -> None:
    """Run every fold and print the table (and one JSON object last with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    off = switchable()
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        choices=sorted(off),
        metavar="CONSTANT",
        help=f"switch this constant's term off in every fold (repeatable): {', '.join(sorted(off))}",
    )
    parser.add_argument(
        "--hold",
        action="append",
        default=[],
        type=_held,
        metavar="CONSTANT=VALUE",
        help="hold this constant at VALUE (inside its schema bounds) in every fold instead of fitting it (repeatable)",
    )
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="run the folds in N processes (default 1)")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    fixed = {name: off[name] for name in args.without} | dict(args.hold)
    train, test = training_sets(), test_sets()
    rows = run_folds(sorted({s.device for s in test}), train, test, fixed, args.jobs)
    if fixed:
        print("held out of the fit: " + ", ".join(f"{n} = {v:g}" for n, v in fixed.items()))
    print(
        f"{'GPU left out':26s}{'dtype':6s}{'family':8s}{'cuDNN from':11s}{'TC from':8s}{'linear %':>9s}{'bmm %':>8s}"
        f"{'conv3x3 %':>10s}{'GEMM grid %':>12s}"
    )
    for r in rows:
        cells = [r.get(k) for k in ("linear_mape", "bmm_mape", "conv2d_mape", "gemm_grid_match")]
        text = ["-" if c is None else f"{c:.1f}" for c in cells]
        print(
            f"{r['gpu']:26s}{r['dtype']:6s}{r['family']:8s}{r['constants_from']:11s}{r['tensor_from']:8s}"
            f"{text[0]:>9s}{text[1]:>8s}{text[2]:>10s}{text[3]:>12s}"
        )
    print(
        f"targets: linear <= {TARGETS['linear']}%, bmm <= {TARGETS['bmm']}%, conv 3x3 <= {TARGETS['conv2d']}%, "
        f"GEMM grid >= {TARGETS['grid']}%"
    )
    if args.json:
        print(json.dumps({"folds": rows, "targets": TARGETS, "held": fixed}))


if __name__ == "__main__":
    main()
