"""Architecture facts as data: families, kernel names, tensor-core dtypes and the kernel-table fallback."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

import gpusim
from gpusim import spec as spec_module
from gpusim.engine import DEVICE_COLUMNS, TILE_COLUMNS, USE_LINEAR, gemm_select
from gpusim.kernels import KERNEL_TABLES, kernel_table
from gpusim.predict import engine_inputs
from hw_specs import CC_DIR, DEVICE_DIR
from tests.conftest import REPO, run_cli


@pytest.mark.parametrize(
    "gpu,dtype,prefix",
    [
        ("v100", "fp16", "volta_h884gemm_"),  # PTX mma.m8n8k4 on sm_70
        ("t4", "fp16", "turing_h1688gemm_"),
        ("t4", "int8", "turing_i8816gemm_"),
        ("a100", "tf32", "ampere_s1688gemm_"),
        ("a100", "bf16", "ampere_bf16816gemm_"),
        ("h100", "tf32", "sm90_xmma_gemm_tf32_tilesize"),  # WGMMA tiles (CUTLASS GenerateSM90_*)
        ("b200", "bf16", "sm100_xmma_gemm_bf16_tilesize"),  # tcgen05 tiles (CUTLASS GenerateSM100_*)
        ("rtx5090", "fp16", "sm120_h16816gemm_"),  # no wgmma/tcgen05 on sm_120: sm_80's mma.sync tiles
        ("l4", "fp8", "ampere_e16832gemm_"),  # sm_89 runs sm_80's table, plus FP8 MMA
        ("t4", "fp32", "volta_sgemm_"),  # Turing's cuBLAS runs volta_* SIMT kernels (recorded names)
    ],
)
def test_kernel_names_come_from_the_compute_capability_file(gpu, dtype, prefix):
    launch = gpusim.predict(gpusim.Linear(4096, 4096, 4096), gpu, dtype).launches[0]
    assert launch.kernel.startswith(prefix)


def test_every_shipped_compute_capability_has_its_facts():
    for path in CC_DIR.glob("sm_*.yaml"):
        cc = f"{path.stem[3:-1]}.{path.stem[-1]}"
        arch = spec_module.load_arch(cc)
        assert arch.fp32_lanes_per_sm in (64, 128) and arch.kernel_table <= int(path.stem[3:])


def test_b200_runs_its_own_tcgen05_table_without_a_fallback():
    b200 = gpusim.load_spec("b200")
    # 2.25 PFLOPS dense FP16 per GPU (DGX B200 datasheet: 36 PF sparse / 8) at the clock the peak assumes
    assert b200.peak_flops_per_us("fp16") == pytest.approx(2.25e9, rel=0.005)
    table = kernel_table(b200)
    assert table.cc == 100 and table.fallback is None
    for dtype, prefix in (("fp8", "sm100_xmma_gemm_fp8_"), ("bf16", "sm100_xmma_gemm_bf16_"), ("fp32", "sm100_sgemm")):
        pred = gpusim.predict(gpusim.Linear(8192, 8192, 8192), b200, dtype)
        assert pred.fallback is None and pred.launches[0].kernel.startswith(prefix)
    # the big GEMM takes a 2-SM MMA tile: a CTA pair on a 2x1 cluster, 256 x 256 per pair
    big = gpusim.predict(gpusim.Linear(8192, 8192, 8192), b200, "bf16").launches[0]
    # persistent (CUTLASS 3's default tile scheduler): one CTA per SM, looping over the 64 x 32 tiles
    assert "tilesize256x256x64_cluster2x1x1_2sm" in big.kernel and big.grid == 148
    assert big.waves == -(-(8192 // 128) * (8192 // 256) // 148)
    # fp8 runs twice the fp16 rate: a large GEMM is predicted nearly twice as fast
    t8, t16 = (gpusim.predict(gpusim.Linear(8192, 8192, 8192), b200, d).total_us for d in ("fp8", "fp16"))
    assert 1.8 < t16 / t8 < 2.05
    assert gpusim.predict(gpusim.Linear(64, 64, 64), "a100", "fp16").fallback is None


def test_hopper_big_tiles_run_one_cta_per_sm():
    # 128x256x64 fp16 in 4 stages: 4 x (128 + 256) x 64 x 2 B = 192 KB of the 227 KB an SM has
    launch = gpusim.predict(gpusim.Linear(8192, 8192, 8192), "h100-sxm", "fp16").launches[0]
    assert launch.ctas_per_sm == 1 and launch.threads == 384  # producer + 2 consumer warp groups
    assert launch.kernel.startswith("sm90_xmma_gemm_fp16_tilesize")
    # a persistent grid: the 132 SMs' worth of CTAs, each looping over its share of the 2,048 tiles
    assert launch.grid == 132 and launch.waves == -(-2048 // 132)


def _cluster_rows(gpu: str, dtype: str, bm: int, bn: int):
    """Engine inputs of gpu restricted to the bm x bn rows, and those rows' cluster shapes."""
    table, limits, device, consts = engine_inputs(gpusim.load_spec(gpu), dtype)
    col = {c: i for i, c in enumerate(TILE_COLUMNS)}
    rows = table[(table[:, col["bm"]] == bm) & (table[:, col["bn"]] == bn)]
    return rows, limits, device, consts, [(r[col["cluster_m"]], r[col["cluster_n"]]) for r in rows]


def test_a_cluster_rounds_the_grid_up_to_whole_clusters():
    rows, limits, device, consts, clusters = _cluster_rows("h100-sxm", "fp16", 128, 128)
    assert sorted(clusters) == [(1, 2), (2, 1)]
    one = np.ones(1, np.int64)
    m, n = np.array([3 * 128]), np.array([3 * 128])  # 3 x 3 output tiles
    for row, (cm, _cn) in zip(rows, clusters):
        out = gemm_select(
            m, n, np.array([4096]), one, np.zeros(1), np.ones(1), 2, row[None, :], limits, device, consts, False
        )
        # 2x1: x rounds 3 -> 4, y stays 3; 1x2: y rounds 3 -> 4
        assert out.grid[0] == (4 * 3 if cm == 2 else 3 * 4)


def test_split_k_and_gemv_paths_exist_on_every_kernel_table():
    # K = 500,000 with 256 x 256 outputs on every architecture: split-K (or an in-CTA sliced-K kernel
    # with enough CTAs), never the 4 CTAs of a 128x128 tile alone
    deep = gpusim.Linear(256, 500_000, 256)
    for gpu in ("p100", "gtx1080ti", "v100", "t4", "a100", "l4", "h100-sxm", "b200", "rtx5090"):
        for dtype in ("fp32", "fp16"):
            launch = gpusim.predict([deep], gpu, dtype).main_launches()[0]
            assert launch.grid >= 20 and (launch.split_k > 1 or "sliced" in launch.kernel), (gpu, dtype, launch)
    # torch.bmm of the same skinny, very deep GEMM splits K too, instead of 4 CTAs 21x slower than the Linear
    bmm, linear = gpusim.Matmul(1, 256, 256, 500_000), gpusim.Linear(256, 500_000, 256)
    for gpu in ("gtx1080ti", "a100", "h100-sxm", "b200"):
        launch = gpusim.predict([bmm], gpu, "fp32").main_launches()[0]
        assert launch.split_k > 1 and launch.grid >= 20, (gpu, launch)
        assert gpusim.predict([bmm], gpu, "fp32").total_us < 2 * gpusim.predict([linear], gpu, "fp32").total_us
    # batch 1: the weights stream once (GEMV) on Blackwell too
    assert gpusim.predict([gpusim.Linear(1, 4096, 4096)], "b200", "fp32").main_launches()[0].algorithm == "gemv"


def test_every_shipped_gpu_has_a_runnable_kernel_for_every_use_and_dtype():
    # a table whose tiles all overflow the SM (e.g. sm_100's 192 KB tiles on sm_120's 100 KB) would price inf
    for path in sorted(DEVICE_DIR.glob("*.yaml")):
        spec = gpusim.load_spec(str(path))
        for dtype in ("fp32", "fp16", "bf16", "fp8"):
            if dtype != "fp32" and not spec.uses_tensor_cores(dtype):
                continue
            ops = [
                gpusim.Linear(512, 4096, 4096),
                gpusim.Matmul(8, 512, 512, 512),
                gpusim.Conv2d(8, 64, 64, 56, 56, 3, 1, 1),
            ]
            pred = gpusim.predict(ops, spec, dtype)
            assert np.all(np.isfinite(pred.op_times_us)) and pred.fallback is None, (path.name, dtype)


@pytest.fixture
def cc_dir(tmp_path, monkeypatch) -> Path:
    """A copy of hw_specs/compute_capability that a test may add files to."""
    copy = tmp_path / "cc"
    shutil.copytree(CC_DIR, copy)
    monkeypatch.setattr(spec_module, "CC_DIR", copy)
    spec_module.load_limits.cache_clear()
    spec_module.load_arch.cache_clear()
    yield copy
    spec_module.load_limits.cache_clear()
    spec_module.load_arch.cache_clear()


def _future_device(tmp_path: Path, cc: str) -> Path:
    data = yaml.safe_load((DEVICE_DIR / "b200.yaml").read_text())
    data.update(compute_capability=cc, name="Future GPU", aliases=["future-gpu"])
    path = tmp_path / "future.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_unknown_future_compute_capability_predicts_with_a_stated_fallback(cc_dir, tmp_path):
    facts = yaml.safe_load((cc_dir / "sm_100.yaml").read_text())
    facts["compute_capability"], facts["arch"]["kernel_table"] = "11.0", 110
    (cc_dir / "sm_110.yaml").write_text(yaml.safe_dump(facts))
    spec = spec_module.load_spec_file(_future_device(tmp_path, "11.0"))
    pred = gpusim.predict([gpusim.Conv2d(8, 64, 64, 56, 56, 3, 1, 1), gpusim.Linear(512, 512, 512)], spec, "bf16")
    assert np.all(np.isfinite(pred.op_times_us)) and f"sm_{max(KERNEL_TABLES)}" in pred.fallback
    assert "sm_110" in pred.fallback


def test_compute_capability_file_without_facts_is_one_line(cc_dir, tmp_path):
    facts = yaml.safe_load((cc_dir / "sm_100.yaml").read_text())
    del facts["arch"]
    facts["compute_capability"] = "11.0"
    (cc_dir / "sm_110.yaml").write_text(yaml.safe_dump(facts))
    with pytest.raises(gpusim.SpecError, match=r"future\.yaml: .*sm_110\.yaml: field 'arch': missing field"):
        spec_module.load_spec_file(_future_device(tmp_path, "11.0"))


def test_device_without_compute_capability_file_fails_in_one_line_on_the_cli(tmp_path):
    result = run_cli("specs", "check", str(_future_device(tmp_path, "11.0")))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "future.yaml" in result.stderr and "sm_110.yaml" in result.stderr and "Traceback" not in result.stderr


def test_device_file_disagreeing_with_its_compute_capability_is_rejected(tmp_path):
    data = yaml.safe_load((DEVICE_DIR / "t4.yaml").read_text())
    data["fp32_cores_per_sm"] = 128  # sm_75 has 64 FP32 lanes per SM
    data["sources"]["fp32_cores_per_sm"] = "a wrong datasheet"
    path = tmp_path / "t4.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(gpusim.SpecError, match="fp32_cores_per_sm': 128 disagrees with compute capability 7.5's 64"):
        spec_module.load_spec_file(path)


def test_engine_refuses_tables_of_the_wrong_layout():
    table, limits, device, consts = engine_inputs(gpusim.load_spec("a100"), "fp16")
    assert table.shape[1] == len(TILE_COLUMNS) and device.shape == (len(DEVICE_COLUMNS),)
    one = np.ones(1, np.int64)
    args = (one, one, one, one, np.ones(1), np.ones(1), 2)
    with pytest.raises(ValueError, match="non-empty"):
        gemm_select(*args, table[:0], limits, device, consts, True)
    with pytest.raises(ValueError, match="device vector"):
        gemm_select(*args, table, limits, device[:-1], consts, True)


def test_no_code_branches_on_a_compute_capability_number():
    pattern = re.compile(r"cc_major_minor|\bcc\s*[<>]=?\s*\d|major\s*[<>=]=?\s*\d|compute_capability\s*[<>]")
    files = [*(REPO / "gpusim").glob("*.py"), REPO / "wavecut" / "specs_new.py"]
    hits = [
        f"{f.name}:{i}" for f in files for i, line in enumerate(f.read_text().splitlines(), 1) if pattern.search(line)
    ]
    assert hits == []


def test_staircase_json_and_stderr_state_the_fallback(cc_dir, tmp_path):
    from typer.testing import CliRunner

    from wavecut.cli import app

    facts = yaml.safe_load((cc_dir / "sm_100.yaml").read_text())
    facts["compute_capability"], facts["arch"]["kernel_table"] = "11.0", 110
    (cc_dir / "sm_110.yaml").write_text(yaml.safe_dump(facts))
    future = str(_future_device(tmp_path, "11.0"))
    result = CliRunner().invoke(
        app, ["staircase", "--op", "linear", "--gpu", future, "--out-channels", "1:64", "--json"]
    )
    assert result.exit_code == 0 and "no tuned kernel table for sm_110" in result.stderr
    import json

    points = json.loads(result.stdout)
    assert len(points) == 64 and all("sm_100" in p["fallback"] for p in points)
    plain = json.loads(
        run_cli("staircase", "--op", "linear", "--gpu", "b200", "--out-channels", "1:8", "--json").stdout
    )
    assert all("fallback" not in p for p in plain)


def test_an_sm90_card_whose_smem_fits_no_wgmma_tile_is_one_line(tmp_path):
    # an sm_90 card with a 100 KB shared-memory limit: every WGMMA tile needs 192 KB, so none can run
    data = yaml.safe_load((DEVICE_DIR / "h100-sxm.yaml").read_text())
    data["sm_limits"] = {"shared_memory_per_sm": 102400, "max_shared_memory_per_block": 101376}
    data["sources"]["sm_limits"] = "a test"
    path = tmp_path / "small-smem.yaml"
    path.write_text(yaml.safe_dump(data))
    spec = spec_module.load_spec_file(path)
    with pytest.raises(gpusim.OpError, match=r"small-smem\.yaml: no kernel for linear op .* fits one SM"):
        gpusim.predict(gpusim.Linear(512, 512, 512), spec, "fp16")
    assert np.isfinite(gpusim.predict(gpusim.Linear(512, 512, 512), spec, "fp32").total_us)  # SIMT tiles fit


def test_hopper_fp32_gemms_are_cublas_xmma_ffma_kernels():
    # public H100 traces of FP32 PyTorch models name only sm80_xmma_gemm_f32f32_f32f32_f32_{tn,nn}_n_tilesize...
    # ffma kernels: tn 32x32, 32x64, 64x64, 128x128 (the most launched), 256x64, 64x256; nn 64x128, 256x128
    from gpusim.kernels import USE_BATCHED, USE_LINEAR, gemm_tiles

    tiles, _ = gemm_tiles(gpusim.load_spec("h100-sxm"), "fp32")
    linear = {(t.bm, t.bn) for t in tiles if t.uses & USE_LINEAR}
    assert linear == {(32, 32), (32, 64), (64, 64), (128, 128), (256, 64), (64, 256)}
    assert {(t.bm, t.bn) for t in tiles if t.uses & USE_BATCHED} == {(64, 128), (256, 128)}
    assert all(t.k_slices == 1 and t.style == "xmma_ffma" for t in tiles if t.uses & (USE_LINEAR | USE_BATCHED))
    launch = gpusim.predict([gpusim.Linear(512, 4096, 4096)], "h100-sxm", "fp32").main_launches()[0]
    assert launch.kernel == "sm80_xmma_gemm_f32f32_f32f32_f32_tn_n_tilesize128x128x8_stage3_ffma"
    assert launch.grid == 4096 // 128 * (512 // 128)
    # the A100 keeps its recorded ampere_sgemm set
    a100 = gpusim.predict([gpusim.Linear(512, 4096, 4096)], "a100", "fp32").main_launches()[0]
    assert a100.kernel.startswith("ampere_sgemm_")


def test_legacy_sgemm_split_k_accumulates_in_place_and_tensor_splits_reduce():
    """NeuSight's kernel lists name no second kernel on any of the 529 split launches (Grid z > 1) of the
    sm60-75 maxwell_/volta_sgemm kernels, so their split-K slices accumulate into C; a tensor-core split and
    sm80's skinny split (cuBLASLt's split-K, so a batch-1 GEMV still beats it) keep the reduction kernel."""
    from gpusim.kernels import gemm_tiles
    from gpusim.spec import load_spec

    simt, _ = gemm_tiles(load_spec("v100-pcie"), "fp32")
    assert all(t.split_in_place for t in simt if t.style == "cublas")
    for dtype in ("fp16", "fp32"):
        assert not any(t.split_in_place for t in gemm_tiles(load_spec("a100"), dtype)[0] if t.uses & USE_LINEAR)


def test_a_batched_gemm_past_the_grid_z_limit_loops_over_its_batch():
    """CUDA caps a grid's z at 65,535 on every compute capability (Programming Guide, technical specifications):
    NeuSight's A100 records 2 x 65,535 CTAs for its 65,536-batch bmms of 2 tiles (10 rows), not 2 x 65,536.
    Each z CTA then covers 2 batch entries: the time stays continuous across the limit, and twice the batch is
    twice the work in the same waves (less their fixed per-wave and launch time)."""
    assert {gpusim.load_spec(g).limits.max_grid_dim_yz for g in ("p100", "v100", "t4", "a100", "h100-sxm", "b200")} == {
        65535
    }

    def launch(batch: int):
        return gpusim.predict(gpusim.Matmul(batch, 256, 128, 64), "a100", "fp32").main_launches()[0]

    assert [launch(b).grid for b in (1000, 65535, 65536, 131072)] == [2000, 131070, 131070, 131070]
    assert launch(65536).time_us == pytest.approx(launch(65535).time_us * 65536 / 65535, rel=1e-4)
    assert 0.99 * 2 * launch(65536).time_us < launch(131072).time_us < 2 * launch(65536).time_us
