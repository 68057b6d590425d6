"""The sustained-clock rule (gpusim.spec.unit_clock): base x activity^(-1/3), capped at the rated clock; a measured
override only with its log; `wavecut specs show` says what each clock rests on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import gpusim
from gpusim.errors import SpecError
from gpusim.spec import GEMM_ACTIVITY, load_spec, load_spec_file, unit_clock
from hw_specs import DEVICE_DIR
from tests.test_calibration_schema import run_cli


def _variant(tmp_path: Path, base: str = "t4", drop: tuple[str, ...] = (), **changes) -> Path:
    data = yaml.safe_load((DEVICE_DIR / f"{base}.yaml").read_text())
    for key in drop:
        data.pop(key)
        data["sources"].pop(key, None)
    for key, value in changes.items():
        data[key] = value
        data["sources"][key] = "test"
    data["aliases"] = ["test-gpu"]
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_rule_by_hand():
    """T4: base 585 MHz; 0.159^(1/3) = 0.54175, 0.42^(1/3) = 0.74889."""
    assert GEMM_ACTIVITY == {"cuda_cores": 0.159, "tensor_cores": 0.42}
    t4 = load_spec("t4")
    cuda, tensor = t4.clock("cuda_cores"), t4.clock("tensor_cores")
    assert cuda.mhz == pytest.approx(585 / 0.54175, rel=1e-4) == pytest.approx(1079.8, abs=0.1)
    assert tensor.mhz == pytest.approx(585 / 0.74889, rel=1e-4) == pytest.approx(781.2, abs=0.1)
    assert (cuda.basis, cuda.confidence) == ("rule", "low") and "base 585 MHz" in cuda.inputs
    assert t4.sustained_clock_mhz == cuda.mhz
    # peaks scale per unit: FP32 on CUDA cores, FP16 on tensor cores
    assert t4.peak_flops_per_us("fp32") == pytest.approx(8.1e6 * 1079.8 / 1590, rel=1e-4)
    assert t4.peak_flops_per_us("fp16") == pytest.approx(65e6 * 781.2 / 1590, rel=1e-4)


def test_the_a100_pcie_pair_differs_by_board_power():
    """Same chip and kernels; the 250 W card's base is 765 MHz, the 300 W card's 1065: 765 / 0.74889 = 1021.5 MHz
    for tensor-core GEMMs on the 40GB card, while 1065 / 0.74889 = 1422 caps the 80GB card at its 1410 boost."""
    a40gb, a80gb = load_spec("a100-pcie-40gb"), load_spec("a100-pcie-80gb")
    assert a40gb.clock("tensor_cores").mhz == pytest.approx(1021.5, abs=0.1)
    assert (a80gb.clock("tensor_cores").mhz, a80gb.clock("tensor_cores").basis) == (1410.0, "rated")
    assert a40gb.clock("cuda_cores").mhz == a80gb.clock("cuda_cores").mhz == 1410.0  # 765 / 0.54175 = 1412 > 1410
    # a compute-bound FP16 GEMM: the 40GB card is slower by the clock ratio; FP32 runs the same on both
    op = gpusim.Linear(8192, 8192, 8192)
    fp16 = [gpusim.predict([op], s, dtype="fp16").gpu_us[0] for s in (a40gb, a80gb)]
    assert fp16[0] / fp16[1] == pytest.approx(1410 / 1021.5, rel=0.03)
    fp32 = [gpusim.predict([op], s, dtype="fp32").gpu_us[0] for s in (a40gb, a80gb)]
    assert fp32[0] == pytest.approx(fp32[1], rel=0.01)


def test_rated_clock_caps_and_a_missing_base_cannot_bind():
    p100, h200 = load_spec("p100"), load_spec("h200")
    assert (p100.sustained_clock_mhz, p100.clock("cuda_cores").basis) == (1303.0, "rated")  # datasheet, not 1329
    assert "rated 1303 MHz" in p100.clock("cuda_cores").inputs
    clock = h200.clock("tensor_cores")
    assert (clock.mhz, clock.basis, clock.confidence) == (1830.0, "no base clock", "low")


def test_a_measured_override_needs_its_log(tmp_path: Path):
    spec = load_spec_file(_variant(tmp_path, sustained_clock_mhz=900.0, clock_log="validation/data/t4/clocks.json"))
    for unit in ("cuda_cores", "tensor_cores"):
        clock = spec.clock(unit)
        assert (clock.mhz, clock.basis, clock.confidence) == (900.0, "measured", "high")
        assert "validation/data/t4/clocks.json" in clock.inputs
    with pytest.raises(SpecError, match="sustained_clock_mhz: a measured override needs clock_log") as err:
        load_spec_file(_variant(tmp_path, sustained_clock_mhz=900.0))
    assert "\n" not in str(err.value)


def test_clock_fields_are_checked(tmp_path: Path):
    with pytest.raises(SpecError, match="base_clock_mhz: must not exceed boost_clock_mhz"):
        load_spec_file(_variant(tmp_path, base_clock_mhz=2000.0))
    with pytest.raises(SpecError, match="field 'tdp_w': missing field"):
        load_spec_file(_variant(tmp_path, drop=("tdp_w",)))
    with pytest.raises(SpecError, match="sources: no source given for base_clock_mhz"):
        data = yaml.safe_load((DEVICE_DIR / "t4.yaml").read_text())
        data["sources"].pop("base_clock_mhz")
        path = tmp_path / "nosrc.yaml"
        path.write_text(yaml.safe_dump(data))
        load_spec_file(path)
    no_base = load_spec_file(_variant(tmp_path, drop=("base_clock_mhz",)))
    assert unit_clock(no_base.device, "cuda_cores").mhz == 1590.0  # nothing to bind the boost


def test_a_recorded_clock_replaces_both_units():
    t4 = load_spec("t4").at_clock(1200.0)
    assert t4.clock("tensor_cores").mhz == t4.clock("cuda_cores").mhz == 1200.0
    assert t4.peak_flops_per_us("fp16") == pytest.approx(65e6 * 1200 / 1590)


def test_specs_show_and_list_say_what_each_clock_rests_on():
    shown = json.loads(run_cli("specs", "show", "t4", "--json").stdout)["clocks"]
    assert shown["cuda_cores"]["mhz"] == pytest.approx(1079.8, abs=0.1) and shown["cuda_cores"]["basis"] == "rule"
    assert "0.42^(-1/3)" in shown["tensor_cores"]["inputs"]
    rows = {r["file"]: r for r in json.loads(run_cli("specs", "--json").stdout)}
    a100 = rows["a100-pcie-40gb.yaml"]
    assert (a100["clock_basis"], a100["tensor_clock_basis"], round(a100["tensor_clock_mhz"])) == ("rated", "rule", 1022)
    text = run_cli("specs", "show", "l4").stdout
    assert "basis: rule" in text and "confidence: low" in text
