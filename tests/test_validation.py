"""validation: readers, scoring, report and `wavecut validate score`."""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from unittest.mock import patch

import pytest

from gpusim import Conv2d, Linear, Matmul, predict
from tests.conftest import MEASURED
from validation.project_format import COLUMNS, op_cells
from validation.readers import Measurement, read_timings
from validation.staircases import find_staircases

SHARED = MEASURED / "neusight"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"recorded GPU timings not found at {SHARED} (../shared is absent in this checkout)"
)
CONV_ROWS = {
    "Tesla_V100-PCIE-32GB.csv": 4958,
    "Tesla_P4.csv": 4996,
    "Tesla_T4.csv": 4969,
    "Tesla_P100-PCIE-16GB.csv": 4952,
}


def cli_in_process(capsys, *args: str) -> tuple[int, str, str]:
    """Run `wavecut ARGS` in-process; (exit code, stdout, stderr)."""
    from wavecut.cli import main

    with patch.object(sys, "argv", ["wavecut", *map(str, args)]), pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def write_project_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    """A project-format CSV with every column."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def project_row(op, median_us: float, device: str = "Tesla T4", grid: tuple[int, int, int] | None = None) -> dict:
    """One project row for op measured at median_us."""
    cells = {**op_cells(op), "dtype": "fp32", "device": device, "median_us": repr(float(median_us))}
    if grid:
        cells.update(grid_x=str(grid[0]), grid_y=str(grid[1]), grid_z=str(grid[2]))
    return cells


OPS = [Linear(512, 1024, 1024), Linear(4096, 4096, 4096), Linear(64, 256, 128)]
ERRORS = [0.10, 0.20, 0.50]  # APE of each row, as a fraction


@pytest.fixture
def hand_csv(tmp_path: Path) -> Path:
    """Three rows whose APEs are exactly 10%, 20% and 50%; the first row's grid matches, the second's not."""
    pred = predict(OPS, "t4", "fp32")
    # measured = pred / (1 + e) gives |pred - m| / m = e for the first and third row; pred / (1 - e) for the second.
    measured = [pred.isolated_us[0] / 1.1, pred.isolated_us[1] / 0.8, pred.isolated_us[2] / 1.5]
    grid0 = pred.launches[0].grid
    rows = [
        project_row(OPS[0], measured[0], grid=(grid0, 1, 1)),
        project_row(OPS[1], measured[1], grid=(1, 1, 1)),
        project_row(OPS[2], measured[2], device="t4"),
    ]
    return write_project_csv(tmp_path / "hand.csv", rows)


def test_hand_computed_metrics(capsys, hand_csv: Path) -> None:
    code, out, _ = cli_in_process(capsys, "validate", "score", "--data", hand_csv, "--json")
    assert code == 0
    m = json.loads(out)
    assert m["rows"] == 3
    assert m["mape"] == pytest.approx(80 / 3, rel=1e-6)
    assert m["median_ape"] == pytest.approx(20.0, rel=1e-6)
    assert m["p90_ape"] == pytest.approx(20 + 0.8 * 30, rel=1e-6)  # numpy's linear interpolation
    assert m["spearman"] == pytest.approx(1.0)
    assert m["by_device"] == {
        "Tesla T4": {"rows": 2, "mape": pytest.approx(15.0), "median_ape": pytest.approx(15.0)},
        "t4": {"rows": 1, "mape": pytest.approx(50.0), "median_ape": pytest.approx(50.0)},
    }
    assert m["by_op"]["linear"]["rows"] == 3
    assert m["grid_match"] == pytest.approx(50.0) and m["grid_rows"] == 2


def test_human_output_and_report(capsys, tmp_path: Path) -> None:
    sweep = [Conv2d(8, 64, c, 14, 14, 3, 1, 1) for c in range(8, 137, 8)]
    pred = predict(sweep, "t4", "fp32").isolated_us
    path = write_project_csv(tmp_path / "sweep.csv", [project_row(op, t * 1.2) for op, t in zip(sweep, pred)])
    code, out, _ = cli_in_process(capsys, "validate", "score", "--data", path, "--report", tmp_path / "rep")
    assert code == 0 and "17 rows" in out and "Tesla T4" in out
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "| MAPE | 16.7% |" in report  # predicted = measured / 1.2 on every row
    for png in ("predicted_vs_measured.png", "error_histogram.png", "staircase_1.png"):
        assert (tmp_path / "rep" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in report


def test_neusight_reader_mapping(tmp_path: Path) -> None:
    path = tmp_path / "ns.csv"
    path.write_text(
        "OPName,Latency,Device,transA,Grid x,Grid y,Grid z,Kernel Name,B,M,N,K,Input_Channel,Output_Channel,"
        "Kernel_Szie,Input_Size,Stride,Padding\n"
        "linear,1.5e-1,Tesla T4,0,20,16,1,volta_sgemm_128x64_tn,2,512,2560,1024,,,,,,\n"
        "bmm,2E0,Tesla P4,,4,1,384,,384,128,64,96,,,,,,\n"
        "conv,0.25,Tesla T4,,,,,,8,,,,3,64,3,32,1,1\n"
    )
    t = read_timings(path)
    assert t.format == "neusight"
    lin, bmm, conv = t.measurements
    assert lin.op == Linear(1024, 2560, 1024) and lin.latency_us == pytest.approx(150.0)
    assert lin.grid == 320 and lin.kernel == "volta_sgemm_128x64_tn" and lin.dtype == "fp32" and lin.row == 2
    assert bmm.op == Matmul(384, m=128, n=96, k=64) and bmm.grid == 4 * 384 and bmm.latency_us == 2000.0
    assert conv.op == Conv2d(8, 3, 64, 32, 32, 3, 1, 1) and conv.grid is None and conv.row == 4


@pytest.mark.parametrize(
    "text, where",
    [
        ("", "row 1"),
        ("OPName,Latency,Device,B,M,N,K\n", "row 2"),
        ("OPName,Device,B,M,N,K\nlinear,Tesla T4,1,2,3,4\n", "row 1, column 'Latency'"),
        ("OPName,Latency,Device,B,M,N\nlinear,1.0,Tesla T4,1,2,3\n", "row 2, column 'K'"),
        (
            "OPName,Latency,Device,B,M,N,K\nlinear,1.0,Tesla T4,1,2,3,4\nlinear,fast,Tesla T4,1,2,3,4\n",
            "row 3, column 'Latency'",
        ),
        ("OPName,Latency,Device,B,M,N,K\nlinear,1.0,Tesla T4,1,2.5,3,4\n", "row 2, column 'M'"),
        ("OPName,Latency,Device,B,M,N,K\nsoftmax,1.0,Tesla T4,1,2,3,4\n", "row 2, column 'OPName'"),
        ("OPName,Latency,Device,B,M,N,K\nlinear,1.0,Tesla K80,1,2,3,4\n", "unknown GPU 'Tesla K80'"),
        ("op,median_us,device\nlinear,3,Tesla T4\n", "row 1, column 'dtype'"),
        ("a,b\n1,2\n", "row 1, column 'OPName' or 'op'"),
    ],
)
def test_bad_files_one_line_exit_2(capsys, tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    code, out, err = cli_in_process(capsys, "validate", "score", "--data", path)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(path) in err and where in err


def test_unknown_device_says_how_to_add_a_spec(capsys, tmp_path: Path) -> None:
    path = tmp_path / "k80.csv"
    path.write_text("OPName,Latency,Device,B,M,N,K\nlinear,1.0,Tesla K80,1,2,3,4\n")
    _, _, err = cli_in_process(capsys, "validate", "score", "--data", path)
    assert "hw_specs/devices/" in err and "aliases" in err and "--gpu" in err
    code, out, _ = cli_in_process(capsys, "validate", "score", "--data", path, "--gpu", "t4", "--json")
    assert code == 0 and json.loads(out)["by_device"]["Tesla K80"]["rows"] == 1


def test_staircases_found_including_depthwise() -> None:
    def m(op) -> Measurement:
        return Measurement(
            op=op, device="Tesla T4", dtype="fp16", latency_us=1.0, grid=None, kernel="", sweep="s", row=2
        )

    ms = [m(Conv2d(32, 64, c, 14, 14, 3, 1, 1)) for c in range(1, 11)]
    ms += [m(Conv2d(32, c, c, 7, 7, 3, 1, 1, groups=c)) for c in range(8, 80, 8)]
    ms += [m(Linear(64, 128, n)) for n in (1, 2, 3)]  # too short to be a sweep
    stairs = find_staircases(ms)
    assert [(s.field, len(s.rows)) for s in stairs] == [("out_channels", 10), ("in_channels", 9)]
    assert stairs[0].values == list(range(1, 11))


@needs_shared
def test_shared_files_read_and_score(capsys) -> None:
    t = read_timings(SHARED / "linear.csv")
    assert len(t.measurements) == 5134
    assert sum(m.device == "Tesla P4" for m in t.measurements) == 974
    assert len(read_timings(SHARED / "bmm.csv").measurements) == 6405
    code, out, _ = cli_in_process(capsys, "validate", "score", "--data", SHARED / "linear.csv", "--json")
    m = json.loads(out)
    assert code == 0 and m["rows"] == 5134 and m["grid_rows"] == 5134
    assert {"mape", "median_ape", "p90_ape", "spearman", "by_op", "grid_match"} <= set(m)
    assert {k: v["rows"] for k, v in m["by_device"].items()} == {
        "Tesla V100-PCIE-32GB": 1040,
        "NVIDIA A100-PCIE-40GB": 1040,
        "Tesla P100-PCIE-16GB": 1040,
        "Tesla T4": 1040,
        "Tesla P4": 974,
    }


@needs_shared
def test_scoring_25k_rows_under_10_seconds() -> None:
    from validation.readers import Timings
    from validation.score import score

    rows = [m for name in CONV_ROWS for m in read_timings(SHARED / "conv" / name).measurements]
    rows += read_timings(SHARED / "linear.csv").measurements
    assert len(rows) == sum(CONV_ROWS.values()) + 5134 == 25009
    score(Timings(SHARED, "neusight", rows[:10]))  # load the engine once, as any command does
    start = time.perf_counter()
    s = score(Timings(SHARED, "neusight", rows))
    assert time.perf_counter() - start < 10.0
    assert s.summary.rows == 25009 and set(s.summary.by_op) == {"conv2d", "linear"}


def test_timing_column_picks_the_prediction_of_the_same_kind(capsys, tmp_path: Path) -> None:
    op = Linear(4096, 4096, 4096)
    pred = predict([op], "a100", "fp16")
    gpu, isolated = float(pred.gpu_us[0]), float(pred.isolated_us[0])
    assert isolated - gpu == pytest.approx(pred.host_overhead_us[0]) and pred.host_overhead_us[0] > 5
    path = tmp_path / "t.csv"
    path.write_text(
        "OPName,Latency,Device,dtype,B,M,N,K,timing\n"
        f"linear,{gpu / 1000},NVIDIA A100-PCIE-40GB,fp16,1,4096,4096,4096,gpu_kernel\n"
        f"linear,{isolated / 1000},NVIDIA A100-PCIE-40GB,fp16,1,4096,4096,4096,op_wall\n"
    )
    code, out, _ = cli_in_process(capsys, "validate", "score", "--data", path, "--json")
    m = json.loads(out)
    assert code == 0 and m["mape"] == pytest.approx(0.0, abs=1e-6)  # each row against its own kind
    assert set(m["by_timing"]) == {"gpu_kernel", "op_wall"} and m["by_dtype"]["fp16"]["rows"] == 2
    # a file without the column: NeuSight's default is op_wall; --timing says otherwise
    plain = tmp_path / "plain.csv"
    plain.write_text(
        f"OPName,Latency,Device,dtype,B,M,N,K\nlinear,{gpu / 1000},NVIDIA A100-PCIE-40GB,fp16,1,4096,4096,4096\n"
    )
    assert read_timings(plain).measurements[0].timing == "op_wall"
    code, out, _ = cli_in_process(capsys, "validate", "score", "--data", plain, "--json", "--timing", "gpu_kernel")
    assert code == 0 and json.loads(out)["mape"] == pytest.approx(0.0, abs=1e-6)


def test_unknown_timing_is_one_line_naming_file_row_and_values(capsys, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("OPName,Latency,Device,B,M,N,K,timing\nlinear,1.0,Tesla T4,1,2,3,4,cuda_graph\n")
    code, out, err = cli_in_process(capsys, "validate", "score", "--data", path)
    assert code == 2 and err.count("\n") == 1 and str(path) in err and "row 2, column 'timing'" in err
    assert "allowed: op_wall, gpu_kernel, host_wall_step" in err
    code, _, err = cli_in_process(capsys, "validate", "score", "--data", path, "--timing", "wall")
    assert code == 2 and "--timing" in err


@pytest.mark.skipif(not (MEASURED / "vidur").is_dir(), reason=f"vidur timings not found at {MEASURED / 'vidur'}")
def test_vidur_files_read_as_fp16_kernel_times() -> None:
    a40 = read_timings(MEASURED / "vidur" / "vidur_fp16_linear_a40.csv")
    assert len(a40.measurements) == 18648  # vidur/README.md
    first = a40.measurements[0]
    assert (first.dtype, first.timing, first.device, first.latency_us) == ("fp16", "gpu_kernel", "NVIDIA A40", 11.0)
    assert first.op == Linear(1, 512, 4096)  # M = 1 token, N = 512 in-features, K = 4096 out-features
