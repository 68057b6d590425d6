"""Waves and time: NVIDIA's wave-quantisation example and invariants of the engine (hypothesis)."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import gpusim
from gpusim.dtypes import runs_on
from gpusim.engine import launch_waves
from gpusim.occupancy import limits_vector
from gpusim.predict import engine_inputs, launch_overhead_us

A100 = gpusim.load_spec("a100")
LIMITS = limits_vector(A100)
_, _, DEVICE, CONSTS = engine_inputs(A100, "fp16")


def _launch(grid: int, threads: int = 256, regs: int = 255, smem: int = 0):
    return launch_waves(grid, threads, regs, smem, 1e6, 1e3, 1e6, 1e6, LIMITS, A100.sm_count, CONSTS)


def test_nvidia_wave_quantisation_example():
    """A100: 108 SMs, one 256x128 CTA per SM: 108 tiles are one wave, 109 are two."""
    b, _, waves108, tail108, t108 = _launch(108)
    _, _, waves109, tail109, t109 = _launch(109)
    assert (b, waves108, tail108) == (1, 1, 1.0)
    assert waves109 == 2 and tail109 == pytest.approx(1 / 108)
    # compute-bound: the 109th tile costs a whole wave (the tail is never free)
    assert t109 >= 2 * t108 * 0.99


@settings(max_examples=200, deadline=None)
@given(
    grid=st.integers(1, 100_000),
    threads=st.sampled_from([32, 64, 128, 256, 512]),
    regs=st.integers(16, 255),
    smem=st.integers(0, 160_000),
)
def test_waves_is_ceil_of_grid_over_capacity(grid, threads, regs, smem):
    b, _, waves, tail, t = _launch(grid, threads, regs, smem)
    if b == 0:
        assert t == np.inf
        return
    assert waves == math.ceil(grid / (A100.sm_count * b))
    assert 0 < tail <= 1


@settings(max_examples=100, deadline=None)
@given(grid=st.integers(1, 20_000), threads=st.sampled_from([64, 128, 256]), regs=st.integers(16, 255))
def test_time_is_monotone_in_grid_for_a_fixed_kernel(grid, threads, regs):
    t_now = _launch(grid, threads, regs)[4]
    t_next = _launch(grid + 1, threads, regs)[4]
    t_wave = _launch(grid + A100.sm_count * _launch(grid, threads, regs)[0], threads, regs)[4]
    assert t_next >= t_now * (1 - 1e-12)  # monotone up to float rounding (sums in another order differ by an ulp)
    assert t_wave > t_now  # one more wave always costs time


@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(1, 64),
    cin=st.integers(1, 512),
    cout=st.integers(1, 512),
    size=st.integers(1, 56),
    dtype=st.sampled_from(gpusim.DTYPES),
    gpu=st.sampled_from(["t4", "a100", "h100", "p4", "v100"]),
)
def test_time_never_below_launch_overhead(batch, cin, cout, size, dtype, gpu):
    assume(runs_on(dtype, gpusim.load_spec(gpu)))  # fp8 only where FP8 tensor cores are (H100 here)
    ops = [
        gpusim.Conv2d(batch, cin, cout, size, size, 3, 1, 1),
        gpusim.Linear(batch, cin, cout),
        gpusim.elementwise(batch * cin * size * size),
    ]
    pred = gpusim.predict(ops, gpu, dtype)
    assert all(k.time_us >= launch_overhead_us(gpu) for k in pred.launches)
    assert pred.total_us == pytest.approx(sum(k.time_us for k in pred.launches))
