"""Ops, lowering and predictions: shapes, FLOPs, grids by hand, impossible shapes, no torch import."""

import subprocess
import sys

import numpy as np
import pytest
import yaml

import gpusim
from gpusim.staircase import step_edges, sweep
from hw_specs import DEVICE_DIR


def test_conv_output_shape_and_flops():
    conv = gpusim.Conv2d(1, 3, 64, 224, 224, kernel_size=7, stride=2, padding=3)
    assert conv.out_hw == (112, 112)
    assert conv.flops == 2 * 64 * 112 * 112 * 3 * 49  # ResNet stem: 118 MMACs


def test_dilated_and_depthwise_conv():
    dil = gpusim.Conv2d(1, 8, 8, 32, 32, 3, 1, padding=2, dilation=2)
    assert dil.out_hw == (32, 32)
    dw = gpusim.Conv2d(1, 32, 32, 56, 56, 3, 1, 1, groups=32)
    assert dw.is_depthwise and dw.flops == 2 * 32 * 56 * 56 * 9
    k = gpusim.predict(dw, "a100", "fp16").launches[0]
    assert k.kernel == "depthwise_kernel" and k.grid == 32 * 56 * 56 // 256


def test_linear_grid_is_tiles_of_the_chosen_kernel():
    k = gpusim.predict(gpusim.Linear(1024, 2560, 2560), "v100", "fp32").launches[0]
    bm, bn = (int(x) for x in k.kernel.split("_")[2].split("x"))
    assert k.grid == -(-1024 // bm) * -(-2560 // bn) * k.split_k
    assert k.kernel.startswith("volta_sgemm_")


def test_tensor_cores_used_only_where_they_exist():
    assert gpusim.predict(gpusim.Linear(512, 512, 512), "a100", "fp16").launches[0].kernel.startswith("ampere_h16816")
    assert gpusim.predict(gpusim.Linear(512, 512, 512), "a100", "fp32").launches[0].kernel.startswith("ampere_sgemm")
    assert gpusim.predict(gpusim.Linear(512, 512, 512), "p100", "fp16").launches[0].kernel.startswith("maxwell_sgemm")


@pytest.mark.parametrize(
    "make,field",
    [
        (lambda: gpusim.Conv2d(1, 0, 8, 8, 8), "in_channels"),
        (lambda: gpusim.Conv2d(1, 6, 8, 8, 8, groups=4), "groups"),
        (lambda: gpusim.Conv2d(1, 8, 8, 2, 2, kernel_size=5), "kernel"),
        (lambda: gpusim.Linear(1, 8, -1), "out_features"),
        (lambda: gpusim.MemoryOp("bogus", 1, 1), "allowed"),
    ],
)
def test_impossible_shapes_are_clear_errors(make, field):
    with pytest.raises(gpusim.OpError, match=field):
        make()


def test_unknown_dtype_lists_allowed_values():
    with pytest.raises(gpusim.OpError, match="allowed: fp32, tf32, fp16, bf16, int8, fp8"):
        gpusim.predict(gpusim.Linear(8, 8, 8), "a100", "fp4")


def test_fp8_without_fp8_tensor_cores_is_one_line():
    # A100 (sm_80) has no FP8 MMA (PTX ISA: e4m3/e5m2 mma from sm_89); H100 does
    with pytest.raises(
        gpusim.OpError, match=r"fp8 needs FP8 tensor cores.*allowed on it: fp32, tf32, fp16, bf16, int8$"
    ):
        gpusim.predict(gpusim.Linear(8, 8, 8), "a100", "fp8")
    launch = gpusim.predict(gpusim.Linear(4096, 4096, 4096), "h100", "fp8").launches[0]
    assert launch.kernel.startswith("sm90_xmma_gemm_fp8_tilesize")


def test_staircase_edges_are_strictly_cheaper_than_everything_wider():
    points = sweep(gpusim.Conv2d(32, 256, 1, 14, 14, 3, 1, 1), "out_channels", range(1, 257), "a100", "fp16")
    edges = step_edges(points)
    assert edges[-1].value == 256
    for e in edges:
        assert all(p.latency_us > e.latency_us * (1 - 1e-6) for p in points if p.value > e.value)
    # inside a step, fewer channels save nothing: latency equals the edge's
    first = edges[0]
    assert all(
        p.latency_us == pytest.approx(first.latency_us, rel=1e-6) or p.latency_us < first.latency_us
        for p in points
        if p.value <= first.value
    )


def test_gpusim_imports_without_torch():
    code = (
        "import sys, gpusim; gpusim.predict(gpusim.Linear(64, 64, 64), 't4', 'fp16'); "
        "assert 'torch' not in sys.modules, 'gpusim imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# Recorded rows of ../shared/data/measured/neusight (kernel name and grid x*y*z), reproduced by the
# per-architecture kernel lists in gpusim/kernels.py.
@pytest.mark.parametrize(
    "op,gpu,kernel,grid",
    [
        # bmm B=128 M=1024 N=128 K=1024 on A100: ampere_sgemm_128x128_nn, grid 8 x 8 x 128
        (gpusim.Matmul(128, m=1024, n=1024, k=128), "a100-pcie-40gb", "ampere_sgemm_128x128_nn", 8 * 8 * 128),
        # bmm B=40 M=512 N=256 K=512 on P100: maxwell_sgemm_128x64_nn, grid 4 x 8 x 40
        (gpusim.Matmul(40, m=512, n=512, k=256), "p100", "maxwell_sgemm_128x64_nn", 4 * 8 * 40),
        # linear rows=4096 in=8192 out=1024 on P4: sgemm_128x128x8_NT_vec, grid 4 x 4 x 16 (= 8 x 32 tiles)
        (gpusim.Linear(4096, 8192, 1024), "p4", "sgemm_128x128x8_NT_vec", 256),
        # linear rows=8192 in=4096 out=4096 on P100: maxwell_sgemm_32x128_tn, grid 128 x 64
        (gpusim.Linear(8192, 4096, 4096), "p100", "maxwell_sgemm_32x128_tn", 128 * 64),
        # deep K on A100 (K = 32768 > 32 x 6 x 6 tiles of 128x128): ampere_sgemm_64x32_sliced1x4_tn, grid 12 x 24
        (gpusim.Linear(768, 32768, 768), "a100-pcie-40gb", "ampere_sgemm_64x32_sliced1x4_tn", 12 * 24),
        # and shallow K: rows=2048 in=2560 out=50272, ampere_sgemm_128x64_tn, grid 393 x 32
        (gpusim.Linear(2048, 2560, 50272), "a100-pcie-40gb", "ampere_sgemm_128x64_tn", 393 * 32),
    ],
)
def test_recorded_library_kernel_and_grid_are_reproduced(op, gpu, kernel, grid):
    k = gpusim.predict(op, gpu, "fp32").main_launches()[0]
    assert (k.kernel, k.grid) == (kernel, grid)


def test_sm80_cublas_sgemm_never_splits_k():
    # A100 rows record grid z = 1 even for 6 x 4 tiles over K = 30522 (sliced1x4 kernels instead)
    k = gpusim.predict(gpusim.Linear(512, 30522, 768), "a100-pcie-40gb", "fp32").main_launches()[0]
    assert k.split_k == 1 and k.kernel.startswith("ampere_sgemm_")


def test_kernel_lists_differ_by_use():
    from gpusim.kernels import USE_BATCHED, USE_LINEAR, gemm_tiles

    tiles, table = gemm_tiles(gpusim.load_spec("a100-pcie-40gb"), "fp32")
    batched = [(t.bm, t.bn) for t in tiles if t.uses & USE_BATCHED]
    assert batched == [(128, 128)]
    assert any(t.k_slices == 4 and t.uses & USE_LINEAR for t in tiles)


def test_fused_winograd_ctas_carry_fixed_work_in_channel_units():
    # One fused-Winograd GEMM whose 128x128 tiles are its CTAs, priced with and without the per-CTA
    # fixed work: with C = 64 input channels and 64 fixed channels, a compute-bound wave takes 2x
    # as long (the wave latency and launch overhead are zeroed so nothing else is added).
    from gpusim.calibration import CONSTANT_NAMES
    from gpusim.engine import gemm_select
    from gpusim.kernels import USE_FUSED_WINOGRAD
    from gpusim.predict import engine_inputs

    table, limits, device, consts = engine_inputs(gpusim.load_spec("v100-pcie"), "fp32")
    consts = consts.copy()
    for name in ("wave_latency_us", "launch_overhead_us"):
        consts[CONSTANT_NAMES.index(name)] = 0.0
    consts[CONSTANT_NAMES.index("dram_efficiency")] = 1.0
    one = np.ones(1, np.int64)

    def time_us(fixed: float) -> float:
        consts[CONSTANT_NAMES.index("winograd_fused_fixed_channels")] = fixed
        out = gemm_select(
            one * 80 * 128,
            one * 128,
            one * 64,
            one,
            np.zeros(1),
            np.ones(1),
            4,
            table,
            limits,
            device,
            consts,
            False,
            one * USE_FUSED_WINOGRAD,
        )
        assert out[2][0] == 80  # one CTA per SM: one wave
        return float(out[-1][0])

    assert time_us(64.0) == pytest.approx(2 * time_us(0.0), rel=1e-9)


def test_operand_strip_traffic_hand_computed():
    # 256x256 outputs over K = 1024 in 128x128 tiles: 4 CTAs, one wave. Without L2 reuse each CTA
    # reads its two strips, 4 x 256 x 1024 x 4 B = 4 MiB; with reuse inside the wave the 2 distinct
    # strips of each operand are read once, 512 x 1024 x 4 B = 2 MiB. Rows of K = 1023 floats are
    # not 16-byte aligned, which costs no extra traffic (the term was dropped: docs/accuracy.md).
    from gpusim.calibration import CONSTANT_NAMES
    from gpusim.engine import operand_strip_time
    from gpusim.predict import engine_inputs

    consts = engine_inputs(gpusim.load_spec("v100-pcie"), "fp32")[3].copy()
    consts[CONSTANT_NAMES.index("strided_dram_efficiency")] = 0.5
    device = np.array([80, 1.0, 0.0, 1e6, 6 * 2**20])  # DRAM 1e6 bytes/us, 6 MiB L2

    def strips(k: int, drift: float) -> float:
        consts[CONSTANT_NAMES.index("cta_drift_fraction")] = drift
        return operand_strip_time(256, 256, k, 128, 128, 1, 4, 80, 1, 4, device, consts)

    assert strips(1024, 1e9) == pytest.approx(4 * 2**20 / 0.5e6, rel=1e-6)  # footprint >> L2: all missed
    assert strips(1024, 1e-12) == pytest.approx(2 * 2**20 / 0.5e6, rel=1e-6)  # footprint << L2: reused
    assert strips(1023, 1e-12) == pytest.approx(512 * 1023 * 4 / 0.5e6, rel=1e-6)


def test_operand_strips_of_a_wave_follow_the_cta_raster_hand_computed():
    # 1024x1024 outputs in 128x128 tiles (8 x 8 = 64 CTAs) over K = 1024, 16 CTAs a wave: 4 waves, each
    # re-reading its strips from DRAM (1 KiB of L2; no drift reuse). A row raster (1) covers 2 rows of
    # 8 M tiles: 8 + 2 strips of 128 x 1024 x 4 B = 5 MiB a wave. A raster of 4 N tiles per M tile covers
    # 4 x 4 tiles: 8 strips, 4 MiB. A raster of 8 covers 2 M tiles x 8 N tiles: 5 MiB again.
    from gpusim.calibration import CONSTANT_NAMES
    from gpusim.engine import operand_strip_time
    from gpusim.predict import engine_inputs

    consts = engine_inputs(gpusim.load_spec("v100-pcie"), "fp32")[3].copy()
    consts[CONSTANT_NAMES.index("strided_dram_efficiency")] = 0.5
    consts[CONSTANT_NAMES.index("cta_drift_fraction")] = 1e-12
    device = np.array([80, 1.0, 0.0, 1e6, 1024.0])  # DRAM 1e6 bytes/us, 1 KiB L2

    def strips(raster: int) -> float:
        return operand_strip_time(1024, 1024, 1024, 128, 128, 1, 64, 16, raster, 4, device, consts)

    strip = 128 * 1024 * 4
    assert strips(1) == pytest.approx(4 * 10 * strip / 0.5e6, rel=1e-6)
    assert strips(4) == pytest.approx(4 * 8 * strip / 0.5e6, rel=1e-6)
    assert strips(8) == pytest.approx(4 * 10 * strip / 0.5e6, rel=1e-6)


def test_hopper_8192_cubed_gemms_match_a_public_nsys_profile_never_fitted():
    # H100 SXM5, M = N = K = 8192, kernel time from nsys (CUDA 13.1, NGC pytorch 26.02; a public
    # "Nsight Systems: wmma vs cublas_tc kernel comparison" profile): cuBLAS SGEMM 21.1 ms (52.1 TFLOP/s,
    # an sm80 FFMA kernel), TF32 2.64 ms (416.6, an sm90 warpgroup kernel), FP16 1.44 ms (762.9, nvjet
    # wgmma). No Hopper timing is in the shared data: the spec file, the sm90 table and the Ampere-fitted
    # constants alone give these.
    for dtype, measured_tflops in (("fp32", 52.1), ("tf32", 416.6), ("fp16", 762.9)):
        pred = gpusim.predict(gpusim.Linear(8192, 8192, 8192), "h100-sxm", dtype)
        assert 2 * 8192**3 / pred.gpu_us[0] / 1e6 == pytest.approx(measured_tflops, rel=0.1), dtype


def test_ada_fp32_gemm_stays_flat_at_8192_as_a_public_cublaslt_curve(tmp_path):
    # RTX 4060 Ti (AD106: 34 SMs, 2535 MHz boost, 288 GB/s, 32 MB L2): cuBLASLt FP32 at 2048^3 / 4096^3 /
    # 8192^3 runs 16.2 / 17.0 / 16.4 TFLOP/s (AD2605/gemm-zoo benchmarks.md). With sm80's row raster the
    # 8192^3 GEMM streamed its weights once per wave and was predicted at 7.1; the sm89 table swizzles.
    from gpusim.kernels import gemm_tiles

    data = yaml.safe_load((DEVICE_DIR / "l4.yaml").read_text())
    data.update(
        name="RTX 4060 Ti (test)",
        aliases=["rtx4060ti-test"],
        sm_count=34,
        boost_clock_mhz=2535,
        base_clock_mhz=2310,
        tdp_w=165,
        memory_bandwidth_gbs=288,
        memory_bus_bits=128,
        memory_gb=16,
        l2_cache_mb=32,
        peak_tflops={"fp32": 22.06, "fp16": 44.1},
    )
    data.pop("clock_note", None)
    path = tmp_path / "rtx4060ti.yaml"
    path.write_text(yaml.safe_dump(data))
    spec = gpusim.load_spec(str(path))
    assert {t.raster for t in gemm_tiles(spec, "fp32")[0] if t.style == "cublas"} == {8}
    assert {t.raster for t in gemm_tiles(gpusim.load_spec("a100"), "fp32")[0] if t.style == "cublas"} == {1}
    for n, measured in ((2048, 16.2), (4096, 17.0), (8192, 16.4)):
        pred = gpusim.predict(gpusim.Linear(n, n, n), str(path), "fp32")
        assert 2 * n**3 / pred.gpu_us[0] / 1e6 == pytest.approx(measured, rel=0.1), n


def test_ffma_share_of_sgemm_kernels_hand_computed():
    from gpusim.engine import ffma_share

    # 128x128 CTA, 256 threads: 8x8 outputs per thread, 64 FFMA, 4 LDS.128, staging 256/512 + 1/8, 1 loop
    assert ffma_share(128, 128, 1, 256) == pytest.approx(64 / (64 + 4 + 0.625 + 1))
    # 128x32, 256 threads: 4x4 per thread, 16 FFMA, 2 LDS.128, staging 160/512 + 1/8, 1 loop
    assert ffma_share(128, 32, 1, 256) == pytest.approx(16 / (16 + 2 + 0.4375 + 1))


@pytest.mark.parametrize(
    "gpu, ratio",
    [
        ("p100", 2.0),
        ("p4", 2.0),
        ("v100-pcie", 2.0),
        ("t4", 2.0),
        ("a100-pcie-40gb", 2.0),
        ("rtx3090", 1.0),
        ("l4", 1.0),
        ("h100-sxm", 1.0),
    ],
)
def test_fp32_issue_ratio_from_whitepaper_facts(gpu, ratio):
    # 32 threads x warp instructions per clock x sub-partitions / FP32 lanes per SM
    assert gpusim.load_spec(gpu).fp32_issue_ratio == ratio


def test_single_issue_128_lane_sms_lose_the_non_ffma_issue_slots():
    # The same GEMM on an RTX 3090 and on a copy of its spec that could dual-issue: a compute-bound
    # launch of cuBLAS's default 128x64 kernel is slower by exactly 1 / ffma_share on the real,
    # single-issue SM.
    from gpusim.engine import ffma_share
    from gpusim.predict import LoweredOps, launch_overhead_us

    spec = gpusim.load_spec("rtx3090")
    dual = spec.model_copy(update={"limits": spec.limits.model_copy(update={"warp_instructions_per_clock": 2})})
    op = gpusim.Linear(8192, 1024, 8192)
    real, ideal = (LoweredOps([op], s, "fp32").predict().main_launches()[0] for s in (spec, dual))
    assert real.kernel == ideal.kernel == "ampere_sgemm_128x64_tn" and real.grid == ideal.grid
    overhead = launch_overhead_us(spec)
    assert (real.time_us - overhead) / (ideal.time_us - overhead) == pytest.approx(
        1 / ffma_share(128, 64, 1, 128), rel=0.02
    )


def test_large_tensor_core_gemm_runs_near_what_an_h100_measured():
    # An H100 80GB HBM3 lent to this workplace ran a bf16 8192^3 matrix product at 798 TFLOP/s
    # (2026-11-13, random data). The model prices it compute-bound at the sustained clock: before the
    # L2 bound tied to DRAM bandwidth was dropped it predicted 300 TFLOP/s.
    op = gpusim.Linear(8192, 8192, 8192)
    tflops = 2 * 8192**3 / gpusim.predict([op], "h100-sxm", "bf16").op_times_us[0] / 1e6
    assert 0.8 * 798 <= tflops <= 1.1 * 798


def test_skinny_very_deep_gemm_is_split_not_run_as_a_few_ctas():
    # K = 500,000 with 256x256 outputs: the sm61 kernel's tiles alone are 4 CTAs on the 1080 Ti's 28 SMs
    op = gpusim.Linear(256, 500_000, 256)
    split = gpusim.predict([op], "gtx1080ti", "fp32")
    unsplit = gpusim.predict([op], "gtx1080ti", "fp32", allow_split_k=False)
    assert unsplit.launches[0].grid == 4 and split.main_launches()[0].grid >= 20
    assert split.total_us < unsplit.total_us / 4
    for gpu in ("p4", "a100", "h100", "v100", "t4", "b200"):  # every kernel table has a split path here
        assert gpusim.predict([op], gpu, "fp32").main_launches()[0].split_k > 1


def test_sm61_few_tile_linear_splits_k_in_512_deep_slices_as_recorded():
    """The P4's cuBLAS runs linear GEMMs of few output tiles as maxwell_sgemm_128x64 / 128x128 with split-K
    in fixed 512-deep slices: grid z = ceil(K / 512) on all 33 such NeuSight rows (512 x 3072 -> 768: grid
    6 x 8 x 6 = 288). A 1024-row, 32-output GEMM of K = 524,288 (8 tiles of the never-split
    sgemm_128x128x8 on the 1080 Ti's 28 SMs, 47 ms) gets 1024 such slices instead (16 outputs would be a
    small-N streaming pass over the input rows: test_a_linear_of_few_outputs_streams_its_input_rows_once)."""
    recorded = gpusim.predict([gpusim.Linear(512, 3072, 768)], "p4", "fp32").main_launches()[0]
    assert (recorded.kernel, recorded.grid, recorded.split_k) == ("maxwell_sgemm_128x64_tn", 288, 6)
    deep = gpusim.predict([gpusim.Linear(64, 500_000, 64)], "gtx1080ti", "fp32").main_launches()[0]
    assert deep.split_k == 977 and deep.grid == 977  # ceil(500,000 / 512) slices of one 128x64 tile
    few_tiles = gpusim.predict([gpusim.Linear(1024, 524_288, 32)], "gtx1080ti", "fp32")
    assert few_tiles.main_launches()[0].split_k == 1024 and few_tiles.gpu_us[0] < 47_000 / 3


def test_few_output_tiles_split_k_from_k_512_not_only_on_very_deep_gemms():
    """32 outputs of 32 rows, K = 4096 (FP32): sm80's deep-K rule picks the sliced 32x32 kernel, one CTA on
    the A100's 108 SMs (74 us, 0.06 TFLOP/s) before the skinny split reached down from K = 8192 to 512, the
    shallowest K any recorded cuBLAS launch splits (T4 512, V100 768, A100 960: NeuSight Grid z > 1). A
    skinny GEMM may split up to 64 ways (one tile of a 2 x 16 x 524,288 FP16 GEMM: 16 ways left 92 SMs idle)."""
    op = gpusim.Linear(32, 4096, 32)  # 16 outputs would stream (gemm_small_n), 32 are one 32x32 tile
    for gpu in ("a100", "h100-sxm", "l4"):
        launch = gpusim.predict([op], gpu, "fp32").main_launches()[0]
        assert launch.split_k > 1 and launch.grid >= 12, (gpu, launch)  # a dozen CTAs or more, not one
    assert gpusim.predict([op], "a100", "fp32").gpu_us[0] < 15
    assert gpusim.predict([op], "a100", "fp32", allow_split_k=False).gpu_us[0] > 50
    shallow = gpusim.Matmul(12, 128, 196, 196)  # NeuSight A100 bmm rows of K = 196: recorded unsplit
    assert gpusim.predict([shallow], "a100", "fp32").main_launches()[0].split_k == 1
    one_tile = gpusim.predict([gpusim.Linear(2, 524288, 16)], "a100", "fp16").main_launches()[0]
    assert one_tile.split_k > 16 and one_tile.grid > 16


def test_a_gemv_with_fewer_ctas_than_sms_splits_k_and_reduces():
    """16 outputs x 500k inputs (FP32, 32 MB of weights): 4 CTAs of 4 output rows read them on one pass; a
    split-K GEMV (rocBLAS's gemvt_sn_kernel + reduce, CUTLASS's split-K GEMV) gives every SM a slice of at
    least 4096 inputs, then sums the fp32 partials. On the A100 (108 SMs) that streams the weights at about
    the calibrated DRAM rate (0.594 x 1555 GB/s = 924 GB/s: 36 us), plus the reduction's launch."""
    from gpusim.calibration import constants_for

    op = gpusim.Linear(1, 524288, 16)
    pred = gpusim.predict([op], "a100", "fp32")
    assert [k.kernel for k in pred.launches] == ["gemv_kernel", "splitk_reduce_kernel"]
    assert pred.launches[0].algorithm == "gemv_split_k" and pred.launches[0].grid == 108
    rate = constants_for("ampere").dram_efficiency * 1555e3  # bytes per us
    assert 16 * 524288 * 4 / rate < pred.gpu_us[0] < 16 * 524288 * 4 / rate + 15
    # enough output rows to fill the SMs, or too short a K for two 4096-input slices: one pass, as before
    for shape in ((1, 4096, 1000), (1, 4096, 10)):
        assert gpusim.predict([gpusim.Linear(*shape)], "a100", "fp32").launches[0].algorithm == "gemv"


def test_a_linear_of_up_to_16_rows_on_cuda_cores_streams_its_weights_once():
    """cuBLAS's small-N kernel (gemmSN_TN_kernel<float, 128, 16, ...>): 2-16 rows stream the 1 GiB of FP32
    weights at the GEMV's rate, not as a tile GEMM's strided strips (0.38 of peak); 17 rows are a GEMM again,
    and so is an FP16 linear on tensor cores. A streaming launch's last wave costs in proportion to its CTAs."""
    weights = 16384 * 16384 * 4 / 1e3  # GB/s x us
    gemv = gpusim.predict([gpusim.Linear(1, 16384, 16384)], "a100", "fp32")
    for rows in (2, 16):
        pred = gpusim.predict([gpusim.Linear(rows, 16384, 16384)], "a100", "fp32")
        launch = pred.main_launches()[0]
        assert launch.algorithm == "gemm_small_n" and launch.streaming
        assert weights / pred.total_us == pytest.approx(weights / gemv.total_us, rel=0.02)
    tiled = gpusim.predict([gpusim.Linear(17, 16384, 16384)], "a100", "fp32").main_launches()[0]
    assert tiled.algorithm == "gemm" and not tiled.streaming
    assert gpusim.predict([gpusim.Linear(8, 16384, 16384)], "a100", "fp16").main_launches()[0].algorithm == "gemm"
    # Orin: 16 SMs x 12 CTAs of 4 output rows; 1152 rows are 1.5 waves, 1536 two full ones: 0.75 of the time
    from gpusim.predict import launch_overhead_us

    half, full = (gpusim.predict([gpusim.Linear(1, 16384, n)], "orin", "fp32").main_launches()[0] for n in (1152, 1536))
    assert (half.waves, half.tail_fill, full.waves, full.tail_fill) == (2, 0.5, 2, 1.0)
    busy = [k.time_us - launch_overhead_us("orin") for k in (half, full)]
    assert busy[0] / busy[1] == pytest.approx(0.75, rel=0.02)


def test_a_linear_of_few_outputs_streams_its_input_rows_once():
    """The mirror of the small-N case: a regression or gate head (1-16 outputs) on many rows is a GEMV
    over its input, a warp per input row. 1000 rows x 16,384 FP32 inputs on the A100 are 65.5 MB, read
    once at the calibrated DRAM rate (0.594 x 1555 GB/s: 71 us) in 250 CTAs of 4 rows (2.3 waves of 108);
    priced as a tile GEMM they were 32 CTAs of 32x32 on 108 SMs (281 us). One output on 16,384 rows costs
    what 16,384 outputs on one row do (the same bytes, streamed the same way); 17 outputs are a GEMM."""
    from gpusim.calibration import constants_for

    rate = constants_for("ampere").dram_efficiency * 1555e3  # bytes per us
    head = gpusim.predict([gpusim.Linear(1000, 16384, 1)], "a100", "fp32").main_launches()[0]
    assert (head.algorithm, head.grid, head.streaming) == ("gemv", 250, True)
    assert 1000 * 16384 * 4 / rate < head.time_us < 1.5 * 1000 * 16384 * 4 / rate
    sixteen = gpusim.predict([gpusim.Linear(1000, 16384, 16)], "a100", "fp32").main_launches()[0]
    assert sixteen.algorithm == "gemm_small_n" and sixteen.time_us == pytest.approx(head.time_us, rel=0.05)
    assert gpusim.predict([gpusim.Linear(1000, 16384, 17)], "a100", "fp32").main_launches()[0].algorithm == "gemm"
    tall, wide = (
        gpusim.predict([op], "a100", "fp32") for op in (gpusim.Linear(16384, 16384, 1), gpusim.Linear(1, 16384, 16384))
    )
    assert tall.total_us == pytest.approx(wide.total_us, rel=1e-9)


def test_a_batched_matrix_vector_product_streams_its_matrices_once():
    """torch.bmm of one query row per batch entry against its matrix (attention decode on a KV cache, FP32):
    1024 x [1 x 4096] @ [4096 x 128] reads 1024 x 4096 x 128 x 4 bytes = 2.15 GB once as a batched GEMV
    (at the A100's calibrated 924 GB/s: 2.32 ms); as the strided-batched 128x128 tile each CTA computed 127
    padding rows per real one (8.3 ms). A bmm of one matrix is the linear of the same shape."""
    from gpusim.calibration import constants_for

    rate = constants_for("ampere").dram_efficiency * 1555e3  # bytes per us
    pred = gpusim.predict([gpusim.Matmul(1024, 1, 128, 4096)], "a100", "fp32")
    assert pred.main_launches()[0].algorithm == "gemv"
    streamed = 1024 * 4096 * 128 * 4
    assert streamed / rate < pred.gpu_us[0] < 1.1 * streamed / rate
    one = gpusim.predict([gpusim.Matmul(1, 1, 16384, 16384)], "a100", "fp32")
    assert one.total_us == pytest.approx(gpusim.predict([gpusim.Linear(1, 16384, 16384)], "a100", "fp32").total_us)
    # 17 query rows are a tile GEMM again; FP16 bmm stays on tensor cores (its GEMV limit is one row)
    assert gpusim.predict([gpusim.Matmul(8, 17, 4096, 128)], "a100", "fp32").main_launches()[0].algorithm == "gemm"
    assert gpusim.predict([gpusim.Matmul(8, 2, 4096, 128)], "a100", "fp16").main_launches()[0].algorithm == "gemm"


def test_batch_one_linear_streams_its_weights_as_a_gemv():
    op = gpusim.Linear(1, 16384, 16384)  # 1 GiB of FP32 weights
    pred = gpusim.predict([op], "a100", "fp32")
    launch = pred.main_launches()[0]
    bandwidth = 16384 * 16384 * 4 / pred.total_us / 1e3  # GB/s
    assert launch.algorithm == "gemv" and 0.5 * 1555 < bandwidth < 1555
