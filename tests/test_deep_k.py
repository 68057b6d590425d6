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
