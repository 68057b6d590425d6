"""Ops, lowering and predictions: shapes, FLOPs, grids by hand, impossible shapes, no torch import."""
import subprocess
import sys

import pytest

import gpusim
from gpusim.staircase import step_edges, sweep


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


@pytest.mark.parametrize("make,field", [
    (lambda: gpusim.Conv2d(1, 0, 8, 8, 8), "in_channels"),
    (lambda: gpusim.Conv2d(1, 6, 8, 8, 8, groups=4), "groups"),
    (lambda: gpusim.Conv2d(1, 8, 8, 2, 2, kernel_size=5), "kernel"),
    (lambda: gpusim.Linear(1, 8, -1), "out_features"),
    (lambda: gpusim.MemoryOp("bogus", 1, 1), "allowed"),
])
def test_impossible_shapes_are_clear_errors(make, field):
    with pytest.raises(gpusim.OpError, match=field):
        make()


def test_unknown_dtype_lists_allowed_values():
    with pytest.raises(gpusim.OpError, match="allowed: fp32, tf32, fp16, bf16, int8"):
        gpusim.predict(gpusim.Linear(8, 8, 8), "a100", "fp8")


def test_staircase_edges_are_strictly_cheaper_than_everything_wider():
    points = sweep(gpusim.Conv2d(32, 256, 1, 14, 14, 3, 1, 1), "out_channels", range(1, 257), "a100", "fp16")
    edges = step_edges(points)
    assert edges[-1].value == 256
    for e in edges:
        assert all(p.latency_us > e.latency_us * (1 - 1e-6) for p in points if p.value > e.value)
    # inside a step, fewer channels save nothing: latency equals the edge's
    first = edges[0]
    assert all(p.latency_us == pytest.approx(first.latency_us, rel=1e-6) or p.latency_us < first.latency_us
               for p in points if p.value <= first.value)


def test_gpusim_imports_without_torch():
    code = ("import sys, gpusim; gpusim.predict(gpusim.Linear(64, 64, 64), 't4', 'fp16'); "
            "assert 'torch' not in sys.modules, 'gpusim imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True)
