"""The Constants schema is the one place of every constant's name, bounds, start and fit group."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gpusim.calibration import (
    CONSTANT_NAMES,
    FAMILY,
    SHARED,
    STRIP,
    TENSOR,
    Constants,
    bounds,
    constants_for,
    fit_group,
    merge_families,
    starting_point,
)
from tests.conftest import run_cli


def test_every_start_lies_inside_its_bounds_and_loads():
    start = starting_point()
    assert tuple(start) == CONSTANT_NAMES
    for name, value in start.items():
        low, high = bounds(name)
        assert low <= value <= high, name
    Constants(**start)  # the starting point is itself a valid calibration


def test_fit_groups_and_bounds_come_from_the_schema():
    assert fit_group(STRIP) == (
        "strided_dram_efficiency",
        "cta_drift_fraction",
        "drift_waves",
        "l2_miss_sharpness",
        "unaligned_row_extra",
    )
    assert fit_group(TENSOR) == ("tensor_efficiency", "tensor_dram_efficiency")
    assert "simt_efficiency" in fit_group(SHARED) and "implicit_gemm_efficiency" in fit_group(FAMILY)
    assert bounds("dram_efficiency") == (0, 1.0) and bounds("simt_efficiency") == (0, 1.5)
    assert bounds("strided_dram_efficiency") == (0, 1.0)  # the fit's cap was 1.5 before: loading rejects > 1


def test_each_constant_comes_from_the_nearest_family_that_fitted_it():
    base = {"a": 0.0, "b": 0.0}
    fitted = {"turing": {"a": 1.0}, "ampere": {"b": 2.0}}
    # ampere fitted only b: a comes from turing (nearest with it); hopper takes both from the nearest
    assert merge_families(base, fitted, "ampere") == {"a": 1.0, "b": 2.0}
    assert merge_families(base, fitted, "hopper") == {"a": 1.0, "b": 2.0}
    assert merge_families(base, fitted, "pascal") == {"a": 1.0, "b": 2.0}
    # shipped files: Ampere's tensor-core fit reaches Hopper and Blackwell, Turing's cuDNN fit reaches Ampere
    ampere, blackwell, turing = (constants_for(f) for f in ("ampere", "blackwell", "turing"))
    assert blackwell.tensor_efficiency == ampere.tensor_efficiency != 0.8
    assert ampere.implicit_gemm_efficiency == turing.implicit_gemm_efficiency
    assert np.isclose(ampere.tensor_dram_efficiency, 0.75, atol=0.05)


def test_specs_show_says_how_confident_the_clock_is():
    shown = json.loads(run_cli("specs", "show", "l4", "--json").stdout)["clocks"]
    assert shown["cuda_cores"]["confidence"] == "low" and shown["tensor_cores"]["basis"] == "rule"
    rows = {r["file"]: r for r in json.loads(run_cli("specs", "--json").stdout)}
    assert (
        rows["v100-pcie.yaml"]["clock_confidence"] == "medium" and rows["h200.yaml"]["clock_basis"] == "no base clock"
    )


@pytest.mark.parametrize("name", ["dram_efficiency", "strided_dram_efficiency", "tensor_dram_efficiency"])
def test_loading_rejects_what_the_schema_bounds_exclude(name):
    values = {**starting_point(), name: 1.2}
    with pytest.raises(ValueError, match=name):
        Constants(**values)
