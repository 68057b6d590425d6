"""`wavecut predict` from the command line: JSON keys, the table, unmapped ops and --strict."""

import json

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import run_cli
from tests.test_network import CumsumNet
from wavecut.cli import app


def _invoke(*args: str):
    """In process (torch is already imported here); `run_cli` checks the real one-line error path."""
    return CliRunner().invoke(app, ["predict", *args])


def test_predict_json_has_totals_and_layers():
    r = _invoke("resnet18", "--gpu", "t4", "--batch", "2", "--input", "3x64x64", "--mode", "eager", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert {"total_us", "flops", "macs", "tail_waste_us", "layers", "gpu", "batch", "mode"} <= set(data)
    assert data["batch"] == 2 and data["mode"] == "eager" and len(data["layers"]) == 68
    first = data["layers"][0]
    assert {"name", "op", "latency_us", "waves", "grid", "tail_fill", "tail_waste_us", "share"} <= set(first)
    assert (first["name"], first["op"], first["shape"]) == ("conv1", "conv2d", [2, 64, 32, 32])
    assert sum(layer["share"] for layer in data["layers"]) == pytest.approx(1.0)


def test_table_and_unmapped_op_warning(tmp_path):
    path = tmp_path / "cumsum.pt"
    torch.save(CumsumNet(), path)
    r = _invoke(str(path), "--input", "3x16x16", "--trust-model-file")
    assert r.exit_code == 0, r.output
    assert "warning" in r.stderr and "cumsum" in r.stderr
    assert "conv +" not in r.stdout and "tail waste" in r.stdout and "total" in r.stdout


def test_strict_and_bad_arguments_are_one_line_errors():
    r = run_cli("predict", "tests.test_network:CumsumNet", "--input", "3x16x16", "--strict")
    assert r.returncode == 2 and "cumsum" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("predict", "resnet5O", "--mode", "jit")
    assert r.returncode == 2 and "allowed: eager, fused" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("dtype", ["fp8", "bf16"])
def test_predict_on_blackwell_runs_fp8_and_bf16_on_its_own_kernel_table(dtype):
    """B200 (sm_100) runs its own tcgen05 tiles (no fallback note); fp8 is one of its precisions."""
    r = _invoke("resnet18", "--gpu", "b200", "--batch", "2", "--input", "3x64x64", "--dtype", dtype, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["dtype"] == dtype and data["total_us"] > 0
    assert data["fallback"] is None and "no tuned kernel table" not in r.stderr


def test_fp8_on_a_gpu_without_it_is_one_line():
    r = run_cli("predict", "resnet18", "--gpu", "t4", "--input", "3x64x64", "--dtype", "fp8")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "fp8" in r.stderr
