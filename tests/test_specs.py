"""Spec files: every shipped GPU loads, aliases resolve, limits are inherited, bad files fail in one line."""

import json
from pathlib import Path

import pytest
import yaml

import gpusim
from gpusim.spec import DEVICE_DIR, load_spec_file
from tests.conftest import run_cli

REQUIRED = [
    "Tesla P4",
    "Tesla P100-PCIE-16GB",
    "Tesla V100-PCIE-32GB",
    "Tesla V100-PCIE-16GB",
    "Tesla V100-SXM2-16GB",
    "Tesla V100-SXM2-32GB",
    "Tesla T4",
    "NVIDIA A10",
    "NVIDIA A100-PCIE-40GB",
    "NVIDIA A100 80GB PCIe",
    "NVIDIA A100-SXM4-40GB",
    "NVIDIA A100-SXM4-80GB",
    "NVIDIA L4",
    "NVIDIA L40S",
    "NVIDIA GeForce RTX 3090",
    "NVIDIA GeForce RTX 4090",
    "NVIDIA H100 80GB HBM3",
    "NVIDIA H100 PCIe",
    "NVIDIA H200",
    "Orin",
    "NVIDIA GeForce GTX 1080 Ti",
    "NVIDIA TITAN Xp",
    "NVIDIA A10G",
    "NVIDIA A30",
    "NVIDIA RTX A6000",
    "Quadro RTX 6000",
    "NVIDIA GeForce RTX 2080 Ti",
    "NVIDIA TITAN V",
    "Tesla P40",
    "Tesla P100-SXM2-16GB",
    "NVIDIA GeForce RTX 3080",
    "NVIDIA L40",
    "NVIDIA H100 NVL",
    "NVIDIA RTX 6000 Ada Generation",
]


@pytest.mark.parametrize("device_name", REQUIRED)
def test_torch_device_names_resolve(device_name):
    assert device_name.lower() in {a.lower() for a in gpusim.load_spec(device_name).aliases}


def test_short_names_case_insensitive_and_unique():
    assert gpusim.load_spec("A100").name == gpusim.load_spec("nvidia a100-pcie-40gb").name
    assert gpusim.load_spec("h100").sm_count == 132
    assert gpusim.load_spec("T4").sm_count == 40
    seen: dict[str, str] = {}
    for spec in gpusim.list_specs():
        for alias in {a.lower() for a in spec.aliases}:
            assert alias not in seen, f"{alias} in {seen.get(alias)} and {spec.path}"
            seen[alias] = spec.path


def test_limits_are_inherited_from_the_compute_capability():
    a100, t4 = gpusim.load_spec("a100"), gpusim.load_spec("t4")
    assert (a100.limits.max_warps_per_sm, a100.limits.shared_memory_per_sm) == (64, 164 * 1024)
    assert (t4.limits.max_warps_per_sm, t4.limits.max_blocks_per_sm) == (32, 16)
    assert "max_warps_per_sm" not in yaml.safe_load(Path(a100.path).read_text())


def test_power_limited_cards_run_below_boost_and_say_why():
    for name in ("t4", "l4", "orin"):
        spec = gpusim.load_spec(name)
        assert spec.sustained_clock_mhz < 0.8 * spec.device.boost_clock_mhz and len(spec.device.clock_note) > 40


def _write(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load((DEVICE_DIR / "t4.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"sm_count": None}, "field 'sm_count': missing field"),
        ({"sm_count": -4}, "field 'sm_count'"),
        ({"warp_speed": 9}, "field 'warp_speed': unknown field"),
        ({"architecture": "kepler2"}, "field 'architecture'"),
        ({"compute_capability": "4.2"}, "compute capability '4.2' has no limits file"),
        ({"sources": {}}, "sources: no source given"),
        # T4: 40 SMs x 64 lanes x 2 x 1590 MHz = 8.1 TFLOP/s; 81 is a slipped digit
        ({"peak_tflops": {"fp32": 81, "fp16": 65}}, "field 'peak_tflops.fp32': 81"),
    ],
)
def test_bad_spec_file_is_one_clear_line(tmp_path, changes, message):
    path = _write(tmp_path, **changes)
    with pytest.raises(gpusim.SpecError, match=message):
        load_spec_file(path)
    result = run_cli("specs", "check", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message.split(":")[0] in result.stderr
    assert "Traceback" not in result.stderr


def test_user_spec_file_works_by_path(tmp_path):
    # half a T4: 20 SMs x 64 lanes x 2 x 1590 MHz = 4.07 TFLOP/s
    path = _write(tmp_path, name="My T4", aliases=["my-t4"], sm_count=20, peak_tflops={"fp32": 4.07, "fp16": 32.5})
    spec = gpusim.load_spec(str(path))
    assert spec.sm_count == 20 and run_cli("specs", "check", str(path)).returncode == 0


def test_unknown_gpu_suggests_close_matches():
    with pytest.raises(gpusim.SpecError, match="did you mean.*a100"):
        gpusim.load_spec("a10O")


def test_specs_json_lists_every_file():
    rows = json.loads(run_cli("specs", "--json").stdout)
    assert len(rows) == len(list(DEVICE_DIR.glob("*.yaml"))) >= 19
    assert {"name", "aliases", "sm_count"} <= set(rows[0])


def test_nearest_family_prefers_the_same_cc_major_on_ties() -> None:
    from gpusim.calibration import nearest_family

    # volta is as far from pascal as from turing; turing shares its major (7) and its kernels
    assert nearest_family("volta", {"pascal", "turing", "ampere"}) == "turing"
    assert nearest_family("turing", {"volta", "ampere"}) == "volta"
    assert nearest_family("ampere", {"turing", "hopper"}) == "turing"  # no same-major tie: the older
    assert nearest_family("hopper", {"ampere", "turing"}) == "ampere"
    assert nearest_family("unknown", {"ampere"}) == "default"
