"""Leave-one-GPU-out cross-validation of the calibration: fit on every shared GPU but one, score the one left out.

The left-out GPU's family constants come from the other GPUs of its family if any,
else from the nearest family (exactly what a new GPU with only a spec file gets).

    python3 -m validation.crossval [--json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from gpusim.calibration import nearest_family
from validation.calibrate import (
    NEUSIGHT_FILES,
    ROW_STRIDE,
    SHARED_MEASURED,
    DataSet,
    constants_by_family,
    fit,
    load_datasets,
)

# Targets of issue 4, per GPU left out.
TARGETS = {"linear": 10.0, "conv2d": 15.0, "grid": 80.0}


def fold(left_out: str, train: list[DataSet], test: list[DataSet]) -> dict:
    """Fit without `left_out`, then MAPE per op and GEMM grid agreement on its rows."""
    shared, families = fit([s for s in train if s.device != left_out])
    own = [s for s in test if s.device == left_out]
    family = own[0].family
    consts = constants_by_family(shared, families, {family})[family]
    row: dict = {"gpu": left_out, "family": family, "constants_from": nearest_family(family, families)}
    matched = recorded = 0
    for s in own:
        pred = s.lowered.predict(consts)
        row[f"{s.op}_mape"] = float(np.mean(np.abs(pred.isolated_us / s.measured_us - 1)) * 100)
        if s.op in ("linear", "bmm"):
            grids = np.array([k.grid for k in pred.main_launches()])
            has = s.grids >= 0
            matched += int(np.sum(grids[has] == s.grids[has]))
            recorded += int(np.sum(has))
    row["gemm_grid_match"] = 100.0 * matched / recorded if recorded else None
    return row


def main() -> None:
    """Run every fold and print the table (and one JSON object last with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    paths = [SHARED_MEASURED / f for f in NEUSIGHT_FILES]
    train, test = load_datasets(paths, ROW_STRIDE), load_datasets(paths)
    rows = [fold(gpu, train, test) for gpu in sorted({s.device for s in test})]
    print(
        f"{'GPU left out':26s}{'family':8s}{'consts from':12s}{'linear %':>9s}{'bmm %':>8s}{'conv3x3 %':>10s}"
        f"{'GEMM grid %':>12s}"
    )
    for r in rows:
        cells = [r.get(k) for k in ("linear_mape", "bmm_mape", "conv2d_mape", "gemm_grid_match")]
        text = ["-" if c is None else f"{c:.1f}" for c in cells]
        print(
            f"{r['gpu']:26s}{r['family']:8s}{r['constants_from']:12s}{text[0]:>9s}{text[1]:>8s}{text[2]:>10s}"
            f"{text[3]:>12s}"
        )
    print(f"targets: linear <= {TARGETS['linear']}%, conv 3x3 <= {TARGETS['conv2d']}%, GEMM grid >= {TARGETS['grid']}%")
    if args.json:
        print(json.dumps({"folds": rows, "targets": TARGETS}))


if __name__ == "__main__":
    main()
