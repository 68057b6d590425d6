"""The DRAM row-activation ceiling of GEMM operands read along K (hw_specs/memory_types.yaml, docs/accuracy.md).

Hand-computed from the memory facts, and checked against the Tesla P4's recorded bmm rows, where every
K-step visit of torch's A operand opens a GDDR5 row.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from gpusim import Matmul, predict
from gpusim.engine import row_activation_time
from gpusim.predict import device_vector
from gpusim.spec import load_spec, memory_types
from wavecut.specs_cmd import row_activations

NEUSIGHT_BMM = Path(__file__).resolve().parents[2] / "shared" / "data" / "measured" / "neusight" / "bmm.csv"


def test_activation_rate_from_the_memory_facts():
    # P4: 256-bit GDDR5 = 8 x32 channels, tRRD 6.0 ns > tFAW 23.3 / 4 = 5.83 ns: 8 / 6 ns = 1333.3 rows per us
    assert load_spec("p4").row_activations_per_us() == pytest.approx(8 / 6.0e-3)
    # T4: 256-bit GDDR6 = 16 x16 channels, tRRD 4 ns = tFAW 16 / 4: 4000 per us (128 GB/s in 32-byte visits)
    assert load_spec("t4").row_activations_per_us() == pytest.approx(16 / 4.0e-3)
    # V100: 4096-bit HBM2 = 64 pseudo channels, tFAW 15 / 4 = 3.75 ns > tRRD 2 ns
    assert load_spec("v100").row_activations_per_us() == pytest.approx(64 / 3.75e-3)
    # a memory type without sourced timing (LPDDR5) is not modelled
    assert memory_types()["LPDDR5"].activation is None
    assert load_spec("orin").row_activations_per_us() == 0.0
    # `wavecut specs show NAME` reports the ceiling, or why there is none
    assert row_activations(load_spec("p4"))["gbs_at_32_byte_visits"] == 42.7
    assert row_activations(load_spec("orin")) == {
        "memory_type": "LPDDR5",
        "modelled": False,
        "why": "no sourced timing",
    }


def test_row_activation_time_hand_computed():
    device = device_vector(load_spec("p4"), "fp32")
    # 128 x 2048 rows of 2048 fp32 (8 KB, longer than the 2 KB page), 32-byte visits: 256 per row
    assert row_activation_time(128 * 2048, 2048, 32, 4, device) == pytest.approx(128 * 2048 * 256 / (8 / 6.0e-3))
    # 512-byte rows: four share a 2 KB page, so one activation serves four visits
    assert row_activation_time(4096, 128, 32, 4, device) == pytest.approx(4096 * 16 / 4 / (8 / 6.0e-3))
    assert row_activation_time(0, 2048, 32, 4, device) == 0.0
    assert row_activation_time(4096, 2048, 32, 4, device_vector(load_spec("orin"), "fp32")) == 0.0


def test_p4_bmm_is_bound_by_row_activations():
    # torch.bmm of 128 x (2048 x 2048) @ (2048 x 96): cuBLAS's K-major operand is A, 2.1 GB read 32 bytes
    # per row visit; 67,108,864 visits at 1333.3 per us = 50,332 us, where the FLOPs alone take ~30 ms
    p = predict(Matmul(128, 2048, 96, 2048), "p4", "fp32")
    assert p.gpu_us[0] == pytest.approx(128 * 2048 * 256 / (8 / 6.0e-3), rel=1e-3)
    # the same product on tensor cores (multi-stage kernels keep several K steps of a row in flight): not floored
    fp16 = predict(Matmul(128, 2048, 96, 2048), "a40", "fp16")
    assert fp16.gpu_us[0] < 128 * 2048 * 2048 * 2 / 64 / load_spec("a40").row_activations_per_us()


@pytest.mark.skipif(not NEUSIGHT_BMM.exists(), reason="../shared/data/measured/neusight/bmm.csv absent")
def test_p4_recorded_rows_at_the_ceiling():
    # NeuSight's P4 bmm rows with a 96-wide output and K >= 512 (B, M, N, K: A is M x N, B is N x K) ran at
    # 43-44 GB/s of A whatever their size; the ceiling predicts them within 3% (the model without it: 0.6x)
    with NEUSIGHT_BMM.open() as f:
        rows = [r for r in csv.DictReader(f) if r["Device"] == "Tesla P4" and r["K"] == "96" and int(r["N"]) >= 512]
    assert len(rows) == 9
    ratios = []
    for r in rows:
        b, m, n, k = (int(r[c]) for c in ("B", "M", "N", "K"))
        ratios.append(predict(Matmul(b, m, k, n), "p4", "fp32").isolated_us[0] / (float(r["Latency"]) * 1e3))
    assert np.all(np.abs(np.array(ratios) - 1) < 0.03), ratios


def test_a_bad_memory_table_is_one_line(tmp_path, monkeypatch):
    from gpusim import spec as spec_module
    from gpusim.errors import SpecError

    bad = tmp_path / "memory_types.yaml"
    bad.write_text("GDDR9:\n  activation: {channel_bits: 16, page_bytes: 2048, trrd_ns: 4.0, tfaw_ns: .nan}\n")
    monkeypatch.setattr(spec_module, "MEMORY_TYPES_FILE", bad)
    spec_module.memory_types.cache_clear()
    try:
        with pytest.raises(SpecError, match=r"memory_types.yaml: field 'GDDR9.activation.tfaw_ns'"):
            spec_module.memory_types()
        bad.write_text("GDDR9:\n  activation: {channel_bits: 16, page_bytes: 2048, trrd_ns: 4.0, tfaw_ns: 16.0}\n")
        spec_module.memory_types.cache_clear()
        with pytest.raises(SpecError, match="no source given for channel_bits"):
            spec_module.memory_types()
    finally:
        spec_module.memory_types.cache_clear()
