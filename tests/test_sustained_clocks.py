"""The sustained-clock rule (gpusim.spec.unit_clock): base x activity^(-1/3), capped at the rated clock, with the
activity share / (1 + fp16_power x peak fp16 / peak fp32) per math unit; a measured override only with its log;
`wavecut specs show` says what each clock rests on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import gpusim
from gpusim.errors import SpecError
from gpusim.spec import GEMM_ACTIVITY, GemmActivity, load_spec, load_spec_file, unit_clock
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
    """T4: base 585 MHz, rho = 65 / 8.1 = 8.02469. CUDA cores: a = 0.579 / (1 + 0.1641 x 8.02469) = 0.579 / 2.31685
    = 0.24991, a^(1/3) = 0.62988, 585 / 0.62988 = 928.7 MHz; tensor cores: a = 0.42, 0.42^(1/3) = 0.74889,
    585 / 0.74889 = 781.2 MHz."""
    assert GEMM_ACTIVITY == {
        "cuda_cores": GemmActivity(share=0.579, fp16_power=0.1641),
        "tensor_cores": GemmActivity(share=0.42, fp16_power=0.0),
    }
    t4 = load_spec("t4")
    assert GEMM_ACTIVITY["cuda_cores"].of(t4.device.peak_tflops) == pytest.approx(0.24991, abs=1e-5)
    cuda, tensor = t4.clock("cuda_cores"), t4.clock("tensor_cores")
    assert cuda.mhz == pytest.approx(585 / 0.62988, rel=1e-4) == pytest.approx(928.7, abs=0.1)
    assert tensor.mhz == pytest.approx(585 / 0.74889, rel=1e-4) == pytest.approx(781.2, abs=0.1)
    assert (cuda.basis, cuda.confidence) == (
        "rule",
        "low",
    ) and "8.02 fp16/fp32 rate) = 0.2499; base 585 MHz x 0.2499^(-1/3)" in cuda.inputs
    assert t4.sustained_clock_mhz == cuda.mhz
    # peaks scale per unit: FP32 on CUDA cores, FP16 on tensor cores
    assert t4.peak_flops_per_us("fp32") == pytest.approx(8.1e6 * 928.7 / 1590, rel=1e-4)
    assert t4.peak_flops_per_us("fp16") == pytest.approx(65e6 * 781.2 / 1590, rel=1e-4)


def test_the_fp16_rate_sets_the_cuda_core_activity():
    """The two cards the CUDA-core constants come from hold their rated clocks, just: P4 (no FP16, rho 0) 886 /
    0.579^(1/3) = 886 / 0.83348 = 1063.02 > its rated 1063; A100 PCIe 40GB (rho 16) a = 0.579 / 3.6256 = 0.15970,
    765 / 0.54254 = 1410.03 > its 1410 boost. GA10x/Ada (rho ~4, a ~0.3495, a^(1/3) ~0.7044) are lowered:
    L4 795 / 0.70458 = 1128.3 (rho 121 / 30.3), A10 885 / 0.70428 = 1256.6 (125 / 31.2), L40S 1110 / 0.70443
    = 1575.7 (366.4 / 91.6), each below its rated clock (2040, 1695, 2490)."""
    for name, mhz in (("p4", 1063.0), ("a100-pcie-40gb", 1410.0)):
        clock = load_spec(name).clock("cuda_cores")
        assert (clock.mhz, clock.basis) == (mhz, "rated")
    for name, mhz in (("l4", 1128.3), ("a10", 1256.6), ("l40s", 1575.7)):
        clock = load_spec(name).clock("cuda_cores")
        assert (round(clock.mhz, 1), clock.basis) == (mhz, "rule")
    assert GEMM_ACTIVITY["cuda_cores"].of(load_spec("p4").device.peak_tflops) == 0.579  # no fp16 rate: rho = 0


def test_the_a100_pcie_pair_differs_by_board_power():
    """Same chip and kernels; the 250 W card's base is 765 MHz, the 300 W card's 1065: 765 / 0.74889 = 1021.5 MHz
    for tensor-core GEMMs on the 40GB card, while 1065 / 0.74889 = 1422 caps the 80GB card at its 1410 boost."""
    a40gb, a80gb = load_spec("a100-pcie-40gb"), load_spec("a100-pcie-80gb")
    assert a40gb.clock("tensor_cores").mhz == pytest.approx(1021.5, abs=0.1)
    assert (a80gb.clock("tensor_cores").mhz, a80gb.clock("tensor_cores").basis) == (1410.0, "rated")
    assert a40gb.clock("cuda_cores").mhz == a80gb.clock("cuda_cores").mhz == 1410.0  # 1410.03 and 1963 > 1410
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


def test_a_rated_clock_per_math_unit():
    """H100 SXM5: NVIDIA's FP32 peak (67 TFLOPS = 16896 lanes x 2 x 1980 MHz) assumes the boost clock, its dense
    FP16 tensor peak (989 TFLOPS = 132 SMs x 4096 FLOP/clk x 1830 MHz) 1830 MHz; the rule (base 1590 MHz) binds
    neither, so each unit sits at its own rated clock. H100 PCIe: FP32 at its 1755 MHz boost (51 TFLOPS), tensor
    cores below their 1620 MHz rated clock by the rule: 1125 / 0.42^(1/3) = 1502.2 MHz."""
    h100, pcie = load_spec("h100-sxm"), load_spec("h100-pcie")
    assert (h100.clock("cuda_cores").mhz, h100.clock("tensor_cores").mhz) == (1980.0, 1830.0)
    assert "boost 1980 MHz" in h100.clock("cuda_cores").inputs and "rated 1830 MHz" in h100.clock("tensor_cores").inputs
    assert pcie.clock("cuda_cores").mhz == 1755.0
    assert pcie.clock("tensor_cores").mhz == pytest.approx(1502.2, abs=0.1)
    assert gpusim.predict([gpusim.Linear(8192, 8192, 8192)], h100, "fp32").gpu_us[0] == pytest.approx(
        gpusim.predict([gpusim.Linear(8192, 8192, 8192)], h100.at_clock(1980.0), "fp32").gpu_us[0], rel=1e-9
    )


def test_a_rated_clock_per_unit_is_checked(tmp_path: Path):
    with pytest.raises(SpecError, match=r"rated_clock_mhz\.tensor_cores: must not exceed boost_clock_mhz") as err:
        load_spec_file(_variant(tmp_path, rated_clock_mhz={"tensor_cores": 1700.0}))
    assert "\n" not in str(err.value)
    with pytest.raises(
        SpecError, match=r"rated_clock_mhz: unknown math unit 'tensor_core'; allowed: cuda_cores, tensor_cores"
    ) as err:
        load_spec_file(_variant(tmp_path, rated_clock_mhz={"tensor_core": 900.0}))
    assert "\n" not in str(err.value)
    assert load_spec_file(_variant(tmp_path, rated_clock_mhz={"tensor_cores": 700.0})).clock("tensor_cores").mhz == 700


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
    assert shown["cuda_cores"]["mhz"] == pytest.approx(928.7, abs=0.1) and shown["cuda_cores"]["basis"] == "rule"
    assert "0.42^(-1/3)" in shown["tensor_cores"]["inputs"]
    rows = {r["file"]: r for r in json.loads(run_cli("specs", "--json").stdout)}
    a100 = rows["a100-pcie-40gb.yaml"]
    assert (a100["clock_basis"], a100["tensor_clock_basis"], round(a100["tensor_clock_mhz"])) == ("rated", "rule", 1022)
    text = run_cli("specs", "show", "l4").stdout
    assert "basis: rule" in text and "confidence: low" in text
