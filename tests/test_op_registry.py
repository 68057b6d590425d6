"""The op registry (gpusim.ops.OP_KINDS) and the op added through it: scaled_dot_product_attention.

Hand-computed launches follow FlashAttention-2's forward launch (flash-attn
csrc/flash_attn/src/flash_fwd_launch_template.h): grid = ceil(L_q / kBlockM) x batch x heads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from gpusim import OP_KINDS, Matmul, OpError, Prediction, predict, softmax
from gpusim.attention import ScaledDotProductAttention
from gpusim.calibration import constants_for
from gpusim.lowering import Algorithm, StreamProblem, lower
from gpusim.ops import Op, Target, register
from gpusim.spec import load_spec

VIT = ScaledDotProductAttention(batch=8, heads=12, q_len=197, kv_len=197, head_dim=64)


def _one(pred: Prediction):
    (launch,) = pred.launches
    return launch


def test_flash_grid_flops_and_occupancy_by_hand() -> None:
    # ViT-B/16 at batch 8: 12 heads of 64, 197 tokens. FLOPs: Q K^T and P V, 2 x 2 B H L^2 d.
    assert VIT.flops == 4 * 8 * 12 * 197 * 197 * 64 == 953_769_984
    launch = _one(predict(VIT, "a100", "fp16"))
    assert launch.algorithm == "flash"
    assert launch.kernel == "pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 128, 4>>"
    assert launch.grid == 2 * 96 == 192  # ceil(197 / 128) query tiles x 8 x 12
    assert launch.threads == 128  # 4 warps
    # 255 registers a thread -> 8192 a warp, 32768 a CTA: 2 CTAs in 65536 (shared memory, 48 KB + 1 KB
    # reserved a CTA, would allow 3 of A100's 164 KB); 216 slots hold the 192 CTAs in one wave
    assert (launch.ctas_per_sm, launch.limiter, launch.waves) == (2, "registers", 1)
    assert launch.tail_fill == pytest.approx(192 / 216)


def test_flash_tiles_and_shared_memory_per_head_dim() -> None:
    target = Target("fp16", 2, False, mma=(16, 8, 16))

    def flash(head_dim: int):
        op = ScaledDotProductAttention(2, 4, 1000, 1000, head_dim)
        (algo,) = op.lower(target)
        return algo.name, algo.problems[0]

    name, p = flash(64)
    assert (name, p.grid, p.threads, p.smem) == ("flash", 8 * 8, 128, (128 + 2 * 128) * 64 * 2)  # 48 KB
    name, p = flash(128)  # 128 x 64 tile, 4 warps: (128 + 128) x 128 x 2 bytes = 64 KB
    assert (name, p.grid, p.smem) == ("flash", 64, 65536) and p.kernel.endswith("<128, 128, 64, 4>>")
    name, p = flash(80)  # runs the head-dim-96 kernel
    assert p.kernel.endswith("<96, 128, 64, 4>>") and p.smem == (128 + 128) * 96 * 2
    name, p = flash(256)  # 8 warps
    assert p.threads == 256 and p.kernel.endswith("<256, 128, 64, 8>>")
    assert flash(12)[0] == "math"  # head dim not a multiple of 8: no flash kernel, nor a memory-efficient one
    assert flash(320)[0] == "mem_efficient"  # beyond flash's 256: the memory-efficient backend


def test_causal_flops_are_half() -> None:
    causal = ScaledDotProductAttention(8, 12, 197, 197, 64, causal=True)
    assert causal.flops == VIT.flops // 2
    with pytest.raises(OpError, match="causal must be 0 or 1"):
        ScaledDotProductAttention(1, 1, 8, 8, 8, causal=2)


def test_math_path_is_bmm_softmax_bmm_as_priced_alone() -> None:
    # head dims neither fused backend takes (sdp_utils.cpp minimum_gemm_alignment: 4 elements on sm_80+,
    # 8 halves with tensor cores): Q K^T, softmax, P V
    for gpu, dtype, head_dim in (("a100", "fp32", 6), ("t4", "fp16", 12)):
        op = ScaledDotProductAttention(8, 12, 197, 197, head_dim)
        pred = predict(op, gpu, dtype)
        assert [k.algorithm for k in pred.launches] == ["math"] * 3
        scores, out = Matmul(96, 197, 197, head_dim), Matmul(96, 197, head_dim, 197)
        alone = predict([scores, softmax(96 * 197, 197), out], gpu, dtype)
        assert [k.kernel for k in pred.launches] == [k.kernel for k in alone.launches]
        assert pred.total_us == pytest.approx(alone.total_us, rel=1e-12)


def _mem_efficient(op: ScaledDotProductAttention, target: Target):
    (algo,) = op.lower(target)
    assert algo.name == "mem_efficient"
    (problem,) = algo.problems
    return problem


def test_memory_efficient_kernels_by_hand() -> None:
    # PyTorch's memory-efficient backend (kernels/cutlassF.h, kernel_forward.h, gemm_kernel_utils.h)
    a100_fp32 = Target("fp32", 4, True, cc=80)
    p = _mem_efficient(VIT, a100_fp32)
    assert p.kernel == "fmha_cutlassF_f32_aligned_64x64_rf_sm80"  # first Sm80 kernel, kMaxK 64 >= 64
    assert (p.grid, p.threads) == (4 * 12 * 8, 128)  # ceil(197 / 64) x heads x batch; 64 x 64 / 32^2 = 4 warps
    # launch bounds: 12 warps per SM for float -> 3 blocks of 128 threads: 65536 / 384 = 170 -> 168 registers
    assert p.regs == 168
    assert p.smem == 64 * 64 * 4 + 2 * (64 + 64) * 32 * 4  # fp32 score tile + double-buffered K-step tiles
    assert (p.tensor, p.rate_dtype, p.mma_passes) == (True, "tf32", 3)  # 3xTF32 (OpMultiplyAddFastF32)
    assert p.flops == VIT.flops and p.dram_bytes == 8 * 12 * (2 * 197 * 64 * 2) * 4  # Q, K, V, O once
    # fp16 on a T4 (Sm75 set, tensor cores, 12 warps per SM: 3 blocks), head dim 128: the 32 x 128 kernel
    t4 = Target("fp16", 2, False, mma=(16, 8, 8), cc=75)
    p = _mem_efficient(ScaledDotProductAttention(1, 32, 2048, 2048, 128), t4)
    assert p.kernel == "fmha_cutlassF_f16_aligned_32x128_rf_sm75" and p.grid == 64 * 32 and p.threads == 128
    assert (p.tensor, p.rate_dtype, p.mma_passes, p.regs) == (True, "", 1, 168)
    # fp16 on an A100 with a head dim flash does not take (not a multiple of 8 is refused by both): 16-bit
    # types on Sm80 ask for 16 warps per SM -> 4 blocks of 128 threads, 128 registers
    a100_fp16 = Target("fp16", 2, False, mma=(16, 8, 16), cc=80)
    assert ScaledDotProductAttention(1, 1, 64, 64, 264).lower(a100_fp16)[0].name == "mem_efficient"
    p = _mem_efficient(ScaledDotProductAttention(1, 1, 64, 64, 264), a100_fp16)
    assert p.kernel == "fmha_cutlassF_f16_aligned_32x128_gmem_sm80" and p.regs == 128  # head dim > 128
    # fp32 on a P100 (Sm50 set): CUDA cores, alignment 1 (any head dim)
    p = _mem_efficient(ScaledDotProductAttention(2, 3, 100, 100, 6), Target("fp32", 4, True, cc=60))
    assert p.kernel == "fmha_cutlassF_f32_aligned_64x64_rf_sm50" and not p.tensor and p.mma_passes == 1
    # fp16 there: FFMA with an fp32 accumulator, so the FP32 rate, not the P100's paired-FP16 one
    p = _mem_efficient(ScaledDotProductAttention(2, 3, 100, 100, 64), Target("fp16", 2, True, cc=60))
    assert (p.kernel, p.tensor, p.rate_dtype) == ("fmha_cutlassF_f16_aligned_64x64_rf_sm50", False, "fp32")
    big = ScaledDotProductAttention(16, 16, 2048, 2048, 64)  # compute-bound: fp16 and fp32 take the same time
    assert predict(big, "p100", "fp16").total_us == pytest.approx(predict(big, "p100", "fp32").total_us, rel=0.05)


def test_memory_efficient_fp32_runs_at_a_third_of_tf32(monkeypatch: pytest.MonkeyPatch) -> None:
    import gpusim.attention as attention

    big = ScaledDotProductAttention(16, 32, 4096, 4096, 64)  # compute-bound, many waves
    three = predict(big, "a100", "fp32").total_us
    monkeypatch.setitem(attention.MEM_EFF_KERNELS[80].tensor, "fp32", ("tf32", 1))
    one = predict(big, "a100", "fp32").total_us
    assert three / one == pytest.approx(3.0, rel=0.01)
    # and faster than the math path, which writes and reads the 4096 x 4096 scores per head
    math = predict(
        [Matmul(512, 4096, 4096, 64), softmax(512 * 4096, 4096), Matmul(512, 4096, 64, 4096)], "a100", "fp32"
    )
    assert three < math.total_us


def test_flash_is_faster_than_the_memory_efficient_kernel_and_scales_with_heads() -> None:
    flash = predict(VIT, "a100", "fp16").total_us
    efficient = predict(VIT, "a100", "fp32").total_us
    assert flash < efficient
    half = predict(ScaledDotProductAttention(8, 6, 197, 197, 64), "a100", "fp16").total_us
    assert half < flash  # 96 CTAs in one wave: fewer CTAs per SM, less time


def test_a_new_op_kind_needs_only_its_own_class() -> None:
    @register
    @dataclass(frozen=True)
    class Fill(Op):
        """A toy op: writes `elements` values (one streaming kernel)."""

        kind: ClassVar[str] = "toy_fill"
        batch_fields: ClassVar[tuple[str, ...]] = ("elements",)
        elements: int

        def lower(self, target: Target) -> list[Algorithm]:
            return [Algorithm("fill", (StreamProblem("fill", self.elements, self.elements * target.elem_bytes, 0.0),))]

    try:
        pred = predict(Fill(1 << 20, name="f"), "a100", "fp16")
        (launch,) = pred.launches
        assert (launch.op_kind, launch.kernel, launch.grid) == ("toy_fill", "fill_kernel", (1 << 20) // 512)
        memory_host = constants_for(load_spec("a100").architecture).host_overhead_memory_us
        assert pred.host_overhead_us[0] == pytest.approx(memory_host)  # the default host overhead
        assert Fill(10).with_batch(3).elements == 30
        with pytest.raises(OpError, match="registered twice"):
            register(type("Other", (Fill,), {"kind": "toy_fill"}))
    finally:
        del OP_KINDS["toy_fill"]
    with pytest.raises(OpError, match="not a registered op kind"):
        lower(Fill(4), Target("fp16", 2, False))


def test_every_registered_kind_has_a_lowering_and_a_host_overhead() -> None:
    from gpusim.calibration import CONSTANT_NAMES

    assert {"conv2d", "linear", "bmm", "sdpa", "softmax", "reduce"} <= set(OP_KINDS)
    for cls in set(OP_KINDS.values()):
        assert cls.host_overhead in CONSTANT_NAMES
        assert cls.precision in ("conv", "matmul", "storage")
        assert Op.lower is not cls.lower, cls


def test_vit_b_16_prediction_runs_flash_attention_per_block() -> None:
    from planner.network import Network

    net = Network.load("vit_b_16")
    pred = net.predict("a100", 8, "fp16")
    sdpa = [layer for layer in pred.layers if layer.op == "sdpa"]
    assert len(sdpa) == 12  # one per encoder block
    assert {(layer.grid, layer.ctas_per_sm, layer.shape) for layer in sdpa} == {(192, 2, (8, 12, 197, 64))}
    assert all("flash_fwd_kernel" in layer.kernel for layer in sdpa)
    assert not [layer for layer in pred.layers if layer.op in ("bmm", "softmax")]
    # MACs: 12 blocks of 2 B H L^2 d in attention, on top of the linear layers
    linear = sum(op.flops for op in net.ops(8) if op.kind in ("linear", "conv2d")) // 2
    assert pred.macs == linear + 12 * 2 * 8 * 12 * 197 * 197 * 64


def test_sdpa_rows_sweeps_and_torch_calls() -> None:
    import torch

    from validation.measure import build_call
    from validation.project_format import COLUMNS, build_op, op_cells
    from validation.sweeps import expand_case

    cells = op_cells(ScaledDotProductAttention(2, 3, 5, 7, 8, causal=True, name="a"))
    assert {k: cells[k] for k in ("op", "heads", "q_len", "kv_len", "head_dim", "causal")} == {
        "op": "sdpa", "heads": "3", "q_len": "5", "kv_len": "7", "head_dim": "8", "causal": "1",
    }  # fmt: skip
    assert {"heads", "q_len", "kv_len", "head_dim", "causal"} <= set(COLUMNS)
    shape = {c: int(cells[c]) for c in ("batch", "heads", "q_len", "kv_len", "head_dim", "causal")}
    assert build_op("sdpa", shape, "a") == ScaledDotProductAttention(2, 3, 5, 7, 8, causal=True, name="a")
    ops = expand_case({"op": "sdpa", "batch": 1, "heads": "1:3", "q_len": 16, "kv_len": 16, "head_dim": 8}, "t")
    assert [op.heads for op in ops] == [1, 2, 3]
    out = build_call(ops[2], "fp32", "cpu")()
    assert isinstance(out, torch.Tensor) and tuple(out.shape) == (1, 3, 16, 8)
    np.testing.assert_array_equal(out.isfinite().numpy(), True)
