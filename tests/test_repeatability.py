"""The oracle floor: rows of one per-sample GEMM, batch aside, predicted by their group's MAPE-best time."""

from __future__ import annotations

import numpy as np
import pytest

from gpusim.ops import Matmul
from validation.readers import Measurement, read_timings
from validation.repeatability import MIN_CTAS_PER_SM, mape_best, oracle_floor


def _row(batch: int, us: float, grid: int) -> Measurement:
    return Measurement(Matmul(batch, m=128, n=128, k=64), "Tesla T4", "fp32", us, grid, "k", "", 2)


def test_oracle_is_the_mape_best_time_per_sample_hand_computed():
    # T4: 40 SMs, so a row needs a grid of 32 x 40 = 1280 CTAs. Per sample 1, 1, 2 us: the median 1 us
    # (the MAPE-best value) is exact on two rows and 50% too fast on the third, MAPE 50 / 3; the
    # small-grid row is left out.
    full = MIN_CTAS_PER_SM * 40
    rows = [_row(2000, 2000.0, full), _row(4000, 4000.0, 2 * full), _row(3000, 6000.0, full), _row(1, 9.0, 1)]
    (floor,) = oracle_floor(rows)
    assert (floor.rows, floor.groups) == (3, 1)
    assert floor.oracle_mape == pytest.approx(50.0 / 3.0)


def test_mape_best_is_the_inverse_weighted_median():
    # 1 and 3: predicting 1 costs |1/1 - 1| + |1/3 - 1| = 0.67, predicting 3 costs 2, the midpoint 2 costs 1.33
    assert mape_best(np.array([3.0, 1.0])) == 1.0
    assert mape_best(np.array([1.0, 2.0, 2.0, 2.0])) == 2.0


def test_different_per_sample_shapes_do_not_share_a_prediction():
    full = MIN_CTAS_PER_SM * 40
    other = Measurement(Matmul(4000, m=128, n=128, k=128), "Tesla T4", "fp32", 1.0, full, "k", "", 2)
    rows = [_row(2000, 2000.0, full), _row(4000, 4000.0, full), _row(3000, 3000.0, full), other]
    assert oracle_floor(rows)[0].oracle_mape == 0.0


def test_shared_t4_bmm_floor_is_above_the_bmm_target(measured_dir):
    """NeuSight's T4 bmm rows: the same batched GEMM runs 1.6-1.8x faster per sample at some batch
    sizes than at others (the boost clock against the power-limited one), so even the oracle misses
    the 12% bmm target there; every other shared GPU's bmm and linear rows agree within 1-5%."""
    rows = [
        m for name in ("bmm.csv", "linear.csv") for m in read_timings(measured_dir / "neusight" / name).measurements
    ]
    floor = {(r.device, r.op): r for r in oracle_floor(rows)}
    t4 = floor[("Tesla T4", "bmm")]
    assert t4.rows == 1452
    assert t4.oracle_mape == pytest.approx(15.6, abs=0.1)
    others = [r.oracle_mape for key, r in floor.items() if key != ("Tesla T4", "bmm")]
    assert len(others) == 9
    assert max(others) < 5.0
