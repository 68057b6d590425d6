"""validation.deep_k: the measured rate of large linear GEMMs by reduction depth, without the model."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO


def test_only_pascal_slows_down_with_depth_where_the_operands_fit_in_a_gib(measured_dir):
    from validation.deep_k import rates

    cells = rates()

    def median(gpu: str, k: int, band: str = "<= 1 GiB") -> float:
        return float(np.median(cells[(gpu, k, band)]))

    # NeuSight's medians (TFLOP/s): the P100 holds its rate to K = 8192 (32 KB rows), not to 10,240
    assert median("Tesla P100-PCIE-16GB", 8192) == pytest.approx(7.05, abs=0.01)
    assert median("Tesla P100-PCIE-16GB", 10240) == pytest.approx(5.56, abs=0.01)
    assert median("Tesla P100-PCIE-16GB", 30522) == pytest.approx(2.98, abs=0.01)
    # ... where the T4 and the V100, with L2s of the same size (4 and 6 MB), run K = 30,522 at full rate
    assert median("Tesla T4", 30522) == pytest.approx(3.81, abs=0.01)
    assert median("Tesla V100-PCIE-32GB", 30522) == pytest.approx(13.84, abs=0.01)
    assert len(cells[("Tesla P100-PCIE-16GB", 30522, "<= 1 GiB")]) == 21


def test_the_json_lists_every_cell_once(measured_dir):
    result = subprocess.run(
        [sys.executable, "-m", "validation.deep_k", "--json"], capture_output=True, text=True, cwd=REPO, check=True
    )
    cells = json.loads(result.stdout.strip().splitlines()[-1])["cells"]
    keys = [(c["gpu"], c["k"], c["footprint"]) for c in cells]
    assert len(keys) == len(set(keys)) and all(c["rows"] >= 1 for c in cells)
    assert {c["gpu"] for c in cells} == {
        "NVIDIA A100-PCIE-40GB",
        "Tesla P100-PCIE-16GB",
        "Tesla P4",
        "Tesla T4",
        "Tesla V100-PCIE-32GB",
    }


NEUSIGHT_HEADER = "OPName,Latency,Device,Kernel Name,Grid x,Grid y,Grid z,B,M,N,K"


def test_a_file_of_your_own_is_read_the_same_way(tmp_path):
    """`--data FILE`: one GPU's rows, hand-computed. 4096 rows x 8192 inputs -> 4096 outputs is 2.75e11 FLOP;
    in 50 ms that is 5.50 TFLOP/s, in 100 ms 2.75; their operands, (4096 + 4096) x 8192 x 4 bytes, are 256 MiB.
    A row too short (1 ms) or too shallow (K = 1024) does not count."""
    rows = [
        "linear,50.0,Tesla T4,volta_sgemm_128x128_tn,32,32,1,1,4096,8192,4096",
        "linear,100.0,Tesla T4,volta_sgemm_128x128_tn,32,32,1,1,4096,8192,4096",
        "linear,1.0,Tesla T4,volta_sgemm_128x128_tn,32,32,1,1,4096,8192,4096",
        "linear,50.0,Tesla T4,volta_sgemm_128x128_tn,32,32,1,1,4096,1024,4096",
    ]
    data = tmp_path / "linear.csv"
    data.write_text("\n".join([NEUSIGHT_HEADER, *rows]) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "validation.deep_k", "--data", str(data), "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    (cell,) = json.loads(result.stdout.strip().splitlines()[-1])["cells"]
    assert (cell["gpu"], cell["k"], cell["footprint"], cell["rows"]) == ("Tesla T4", 8192, "<= 1 GiB", 2)
    assert cell["median_tflops"] == pytest.approx((5.4976 + 2.7488) / 2, abs=1e-3)


def test_an_unreadable_file_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n")
    result = subprocess.run(
        [sys.executable, "-m", "validation.deep_k", "--data", str(bad)], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and str(bad) in result.stderr
