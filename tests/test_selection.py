"""Pricing a recorded launch (engine `launched_as`, LoweredOps.as_launched) and validation.selection."""

from __future__ import annotations

import numpy as np
import pytest

import gpusim
from gpusim.engine import TILE_COLUMNS, gemm_select
from gpusim.predict import LoweredOps, engine_inputs


def test_a_launch_priced_as_chosen_costs_what_the_choice_cost():
    """The engine's own choice, handed back as a recorded launch, gets the same time and grid; a split the
    gates forbid (K = 64 in two slices of 32) is priced anyway, with twice the tiles' CTAs."""
    table, limits, device, consts = engine_inputs(gpusim.load_spec("v100"), "fp32")
    m, n, k = np.array([2048, 4096]), np.array([1024, 64]), np.array([4096, 64])
    args = (m, n, k, np.ones(2, np.int64), np.zeros(2), np.ones(2), 4, table, limits, device, consts, True)
    chosen = gemm_select(*args)
    again = gemm_select(*args, launched_as=(chosen.tile, chosen.split))
    assert np.array_equal(again.time_us, chosen.time_us) and np.array_equal(again.grid, chosen.grid)
    forced = gemm_select(*args, launched_as=(chosen.tile, np.array([1, 2])))
    bm, bn = (table[chosen.tile[1], TILE_COLUMNS.index(c)] for c in ("bm", "bn"))
    assert forced.split[1] == 2
    assert forced.grid[1] == 2 * -(-4096 // bm) * -(-64 // bn)


def test_as_launched_finds_the_kernel_by_name_and_the_split_by_its_grid():
    """A 4096x4096x4096 Linear on the V100 recorded as volta_sgemm_128x128_tn with 32 x 32 CTAs is the model's
    own choice, so it costs the same; 32 x 32 x 2 CTAs is a split of 2 (priced differently); a grid that is no
    whole number of 128x128 tiles, an unknown name and an unrecorded grid give nan."""
    ops = [gpusim.Linear(4096, 4096, 4096)] * 5
    lowered = LoweredOps(ops, gpusim.load_spec("v100"), "fp32")
    chosen = lowered.predict().main_launches()[0]
    assert (chosen.kernel, chosen.grid, chosen.split_k) == ("volta_sgemm_128x128_tn", 1024, 1)
    names = ["volta_sgemm_128x128_tn"] * 3 + ["volta_sgemm_7x7_tn", "volta_sgemm_128x128_tn"]
    priced = lowered.as_launched(names, [1024, 2048, 1000, 1024, None])
    assert priced[0] == pytest.approx(lowered.op_times()[0], rel=1e-12)
    assert np.isfinite(priced[1]) and priced[1] != priced[0]
    assert np.isnan(priced[2:]).all()


def test_selection_splits_each_gpus_error_into_choice_and_pricing(measured_dir):
    """On the shared rows (in sample): the V100's linears err 9.7% as the model chooses but 18.7% priced as
    cuBLAS launched them; its in-CTA sliced-K kernels, at deep K, are priced 2.5x their time. The T4's are the
    other way (8.9 chosen, 7.8 as launched): its choice costs accuracy. The P4's sgemm_128x128x8 is _NT, not
    _NT_vec, on its 58 rows whose K rows are not 16-byte aligned, and the model names it so on every one."""
    from validation.calibrate import SHARED_MEASURED
    from validation.readers import read_timings
    from validation.selection import RECORDED_KERNEL_FILES, by_kernel, priced_groups, summary

    groups = priced_groups([read_timings(SHARED_MEASURED / f) for f in RECORDED_KERNEL_FILES])
    cells = {(r["gpu"], r["op"]): r for r in summary(groups)}
    v100 = cells[("Tesla V100-PCIE-32GB", "linear")]
    assert (v100["rows"], v100["priced"]) == (1040, 1039)
    assert v100["mape_chosen"] == pytest.approx(9.7, abs=0.1)
    assert v100["mape_as_launched"] == pytest.approx(18.7, abs=0.1)
    # the tile is cuBLAS's on 48.7% of the rows, and of those the split-K factor too on 66.6%
    assert (v100["kernel_match"], v100["grid_match_same_kernel"]) == (
        pytest.approx(48.7, abs=0.1),
        pytest.approx(66.6, abs=0.1),
    )
    t4 = cells[("Tesla T4", "linear")]
    assert (t4["mape_chosen"], t4["mape_as_launched"]) == (pytest.approx(8.9, abs=0.1), pytest.approx(7.8, abs=0.1))
    kernels = {(r["gpu"], r["kernel"]): r for r in by_kernel(groups)}
    sliced = kernels[("Tesla V100-PCIE-32GB", "volta_sgemm_128x32_sliced1x4_tn")]
    assert sliced["rows"] == 47 and sliced["median_as_launched"] == pytest.approx(2.50, abs=0.01)
    unaligned = kernels[("Tesla P4", "sgemm_128x128x8_NT")]
    assert (unaligned["rows"], unaligned["priced"], unaligned["kernel_match"]) == (58, 58, 100.0)


NEUSIGHT_HEADER = (
    "OPName,Latency,Device,Torch Version,CUDNN Version,Kernel Name,Warps per SM,Blocks per SM,Grid x,Grid y,Grid z,"
    "Block x,Block y,Block z,CUDA Version,Kernels,B,M,N,K"
)


def test_validate_selection_reads_a_users_file(tmp_path):
    """`wavecut validate selection` on a file of one V100 4096^3 linear recorded as volta_sgemm_128x128_tn with
    32 x 32 CTAs (the model's own choice): kernel and grid agree, and the two predictions are one; a file whose
    rows record no kernel is one error line naming it, exit 2."""
    import json

    from tests.conftest import run_cli

    row = "linear,10.0,Tesla V100-PCIE-32GB,p2.1.0,8902,volta_sgemm_128x128_tn,16,2,32,32,1,256,1,1,cu121,,1,4096,4096,4096"
    path = tmp_path / "mine.csv"
    path.write_text(f"{NEUSIGHT_HEADER}\n{row}\n")
    out = run_cli("validate", "selection", "--data", str(path), "--json")
    assert out.returncode == 0, out.stderr
    (cell,) = json.loads(out.stdout)["by_gpu"]
    assert (cell["rows"], cell["priced"], cell["kernel_match"], cell["grid_match"]) == (1, 1, 100.0, 100.0)
    assert cell["mape_chosen"] == pytest.approx(cell["mape_as_launched"], rel=1e-12)
    bare = tmp_path / "bare.csv"
    bare.write_text(f"{NEUSIGHT_HEADER}\n{row.replace('volta_sgemm_128x128_tn', '')}\n")
    out = run_cli("validate", "selection", "--data", str(bare))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0 and str(bare) in out.stderr and "kernel" in out.stderr
    out = run_cli("validate", "selection", "--data", str(tmp_path))  # a folder: the reader's own one-line refusal
    assert out.returncode == 2 and "cannot read" in out.stderr and "Traceback" not in out.stderr


def test_the_score_report_has_the_choice_or_pricing_table_when_rows_record_kernels(tmp_path):
    """`validate score --report` adds the selection table for GEMM rows that record kernel and grid, on the
    spec the rows were scored on (--gpu), and leaves it out for a file that records none."""
    from tests.conftest import run_cli

    row = "linear,10.0,my-card,p2.1.0,8902,volta_sgemm_128x128_tn,16,2,32,32,1,256,1,1,cu121,,1,4096,4096,4096"
    for name, text, has in (("mine", row, True), ("bare", row.replace("volta_sgemm_128x128_tn", ""), False)):
        path = tmp_path / f"{name}.csv"
        path.write_text(f"{NEUSIGHT_HEADER}\n{text}\n")
        out = run_cli("validate", "score", "--data", str(path), "--gpu", "v100", "--report", str(tmp_path / name))
        assert out.returncode == 0, out.stderr
        report = (tmp_path / name / "report.md").read_text()
        assert ("## Kernel choice or pricing" in report) is has
        if has:
            assert "| my-card | linear | op_wall | 1 | 1 | 100.0 | 100.0 |" in report
