"""The PyTorch 2.1 cuDNN plan-cache host cost (validation/harness.py), on hand-made rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpusim import Conv2d, Linear
from gpusim.calibration import CONSTANT_NAMES, constants_for
from gpusim.predict import LoweredOps
from gpusim.spec import load_spec
from validation.harness import PLAN_CACHE_LIMIT, affected, cached_conv_plans
from validation.readers import Measurement, read_timings


def _row(op, device: str = "Tesla T4", torch: str = "p2.1.0") -> Measurement:
    return Measurement(
        op=op, device=device, dtype="fp32", latency_us=1.0, grid=None, kernel="", sweep="", row=2, torch=torch
    )


@pytest.mark.parametrize(
    "version, hit",
    [("p2.1.0", True), ("2.1.2+cu121", True), ("2.2.0", False), ("2.10.0", False), ("", False), ("1.13.1", False)],
)
def test_affected_versions(version: str, hit: bool) -> None:
    assert affected(version) is hit


def test_cached_plans_count_distinct_earlier_convs_per_device() -> None:
    a, b = Conv2d(1, 8, 8, 16, 16, 3, 1, 1), Conv2d(2, 8, 8, 16, 16, 3, 1, 1)
    rows = [
        _row(a),
        _row(Linear(4, 4, 4)),
        _row(b),
        _row(Conv2d(1, 8, 8, 16, 16, 3, 1, 1, name="again")),
        _row(a, device="Tesla P4"),
        _row(b, torch="2.2.0"),
        _row(Conv2d(3, 8, 8, 16, 16, 3, 1, 1)),
    ]
    # a: empty cache; linear: not a conv; b: a cached; a again (name ignored): a, b cached;
    # another process (P4): empty; PyTorch 2.2: no cost; a new shape: a, b cached
    assert cached_conv_plans(rows) == [0, 0, 1, 2, 0, 0, 2]


def test_cache_is_capped_at_its_lru_limit() -> None:
    rows = [_row(Conv2d(n, 1, 1, 3, 3)) for n in range(1, PLAN_CACHE_LIMIT + 3)]
    assert cached_conv_plans(rows)[-3:] == [PLAN_CACHE_LIMIT - 1, PLAN_CACHE_LIMIT, PLAN_CACHE_LIMIT]


def test_host_cost_added_per_cached_plan() -> None:
    ops = [Conv2d(1, 8, 8, 16, 16, 3, 1, 1)] * 3
    lowered = LoweredOps(ops, load_spec("t4"), "fp32", cached_plans=[0, 10, 1000])
    consts = lowered.consts.copy()
    consts[CONSTANT_NAMES.index("cudnn_plan_cache_us_per_entry")] = 0.1
    host = lowered.host_overhead(consts)
    assert host[1] - host[0] == pytest.approx(1.0) and host[2] - host[0] == pytest.approx(100.0)
    assert np.allclose(lowered.predict(consts).isolated_us - lowered.predict(consts).op_times_us, host)


def test_readers_keep_the_torch_version(tmp_path: Path) -> None:
    path = tmp_path / "ns.csv"
    path.write_text("OPName,Latency,Device,Torch Version,B,M,N,K\nlinear,1.0,Tesla T4,p2.1.0,1,2,3,4\n")
    assert read_timings(path).measurements[0].torch == "p2.1.0"


# Per-earlier-row slope of (measured - GPU time) read off each NeuSight conv file (docs/accuracy.md):
# the list walk on the host that measured the family's convolutions.
HOST_SLOPE_US = {"pascal": (0.144, 0.158), "volta": (0.054, 0.054), "turing": (0.088, 0.088)}


@pytest.mark.parametrize("family", sorted(HOST_SLOPE_US))
def test_plan_cache_cost_is_fitted_per_family_near_its_hosts_slope(family: str) -> None:
    low, high = HOST_SLOPE_US[family]
    assert 0.85 * low <= constants_for(family).cudnn_plan_cache_us_per_entry <= 1.15 * high
