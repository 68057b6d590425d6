"""The Constants schema is the one place of every constant's name, bounds, start and fit group."""

from __future__ import annotations

import json
import subprocess
import sys

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
    switchable,
)
from gpusim.ops import Linear
from gpusim.predict import LoweredOps
from gpusim.spec import load_spec
from tests.conftest import REPO, run_cli
from validation.calibrate import fit, load_datasets


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


def test_every_switchable_term_has_an_off_value():
    off = switchable()
    assert off == {
        "tile_intensity_half": 0.0,  # every tile at the full SIMT rate
        "wave_latency_us": 0.0,
        "winograd_fused_fixed_channels": 0.0,
        "strided_dram_efficiency": 1e9,  # outside its bounds on purpose: strips take no time
        "cta_drift_fraction": 1e-12,
        "cudnn_plan_cache_us_per_entry": 0.0,
    }
    assert "simt_efficiency" not in off and "host_overhead_gemm_us" not in off  # rates every prediction needs


def test_the_strip_terms_off_values_price_a_pascal_deep_k_gemm_at_its_tile_math():
    # P100, 4096 rows x 30,522 in -> 4096 out: the shipped strips make it DRAM-bound (its rows measure
    # ~2.3 TFLOP/s, docs/accuracy.md); strided_dram_efficiency off removes the whole term, so holding the
    # drift off as well changes nothing; the drift off alone leaves the per-wave re-reads, which its tile
    # math outlasts: the drift is all of the term here
    lowered = LoweredOps([Linear(4096, 30522, 4096)], load_spec("p100"), "fp32")
    names = list(CONSTANT_NAMES)

    def gpu_us(**values: float) -> float:
        c = lowered.consts.copy()
        for name, value in values.items():
            c[names.index(name)] = value
        return float(lowered.op_times(c)[0])

    off = switchable()
    shipped, no_strips = gpu_us(), gpu_us(strided_dram_efficiency=off["strided_dram_efficiency"])
    assert no_strips == gpu_us(
        strided_dram_efficiency=off["strided_dram_efficiency"], cta_drift_fraction=off["cta_drift_fraction"]
    )
    assert shipped / no_strips > 1.5
    assert gpu_us(cta_drift_fraction=off["cta_drift_fraction"]) == no_strips


def _linear_csv(tmp_path, slowdown: dict[str, float]):
    """Three NeuSight-format linear rows per device, each device's times scaled by its slowdown."""
    header = "OPName,Latency,Device,Kernel Name,Grid x,Grid y,Grid z,B,M,N,K"
    shapes = ((0.05, 512, 1024, 1024), (0.4, 2048, 4096, 2048), (3.1, 4096, 8192, 4096))
    rows = [
        f"linear,{ms * scale},{device},volta_sgemm_128x128_tn,1,1,1,1,{m},{k},{n}"
        for device, scale in slowdown.items()
        for ms, m, k, n in shapes
    ]
    path = tmp_path / "linear.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_a_fit_holds_switched_off_constants_out_of_every_group(tmp_path):
    fixed = switchable()
    shared, families = fit(load_datasets([_linear_csv(tmp_path, {"Tesla V100-PCIE-32GB": 1.0})]), fixed)
    for name, value in fixed.items():
        assert shared[CONSTANT_NAMES.index(name)] == value, name
    assert not any(name in c for c in families.values() for name in fixed)


def test_crossval_rejects_a_term_it_cannot_switch_off_in_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "validation.crossval", "--without", "simt_efficiency"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "invalid choice: 'simt_efficiency'" in result.stderr and "strided_dram_efficiency" in result.stderr


@pytest.mark.parametrize(
    ("hold", "message"),
    [
        ("bogus=1", "unknown constant 'bogus'; allowed: launch_overhead_us"),
        ("dram_efficiency=abc", "VALUE must be a number"),
        ("dram_efficiency=1.5", "dram_efficiency = 1.5 is outside its bounds [0, 1]"),
    ],
)
def test_crossval_holds_only_a_known_constant_inside_its_bounds(hold, message):
    result = subprocess.run(
        [sys.executable, "-m", "validation.crossval", "--hold", hold], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr and message in result.stderr


def test_crossval_in_forked_workers_gives_the_sequential_table(tmp_path):
    from validation.crossval import run_folds

    sets = load_datasets([_linear_csv(tmp_path, {"Tesla V100-PCIE-32GB": 1.0, "Tesla T4": 3.0})])
    gpus = ["Tesla T4", "Tesla V100-PCIE-32GB"]
    fixed = {name: value for name, value in switchable().items() if name != "tile_intensity_half"}
    sequential = run_folds(gpus, sets, sets, fixed, jobs=1)
    assert [r["gpu"] for r in sequential] == gpus
    assert run_folds(gpus, sets, sets, fixed, jobs=2) == sequential
