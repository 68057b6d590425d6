"""scaled_dot_product_attention: the op kind, as PyTorch's SDPA runs it (one module: docs/architecture.md,
"Adding an op").

- fp16 / bf16 on GPUs whose tensor cores have FlashAttention-2's MMA (mma.m16n8k16, sm_80 and newer:
  the `tensor_cores` shape in hw_specs/compute_capability): PyTorch's flash backend, one fused kernel
  (FlashAttention-2 forward, Dao 2023, "FlashAttention-2: Faster Attention with Better Parallelism and
  Work Partitioning"). Its launch (flash-attn csrc/flash_attn/src/flash_fwd_launch_template.h,
  run_flash_fwd and run_mha_fwd_hdim*, the sm_80 / H100 choices without dropout): grid =
  ceil(L_q / kBlockM) x batch x heads, kNWarps x 32 threads, the Flash_fwd_kernel_traits tile
  per head dim in FLASH_TILES. Shared memory per CTA (kernel_traits.h, Share_Q_K_smem off): a Q tile
  and K and V tiles in 16-bit, (kBlockM + 2 kBlockN) x head_dim x 2 bytes (48 KB at head_dim 64).
  FLOPs 4 B H L_q L_k d (Q K^T and P V; causal: half, as the paper counts it) on tensor cores; DRAM:
  Q, K, V read and O written once (each CTA re-reads K and V, served by L2 like a GEMM's operand
  tiles), the floor of the kernel as for a GEMM.
- otherwise (fp32, tf32, GPUs without that MMA): the math path of
  aten/src/ATen/native/transformers/attention.cpp (_scaled_dot_product_attention_math): a batched
  Q K^T, softmax and a batched product with V, each as its own op kind lowers it (the scaling of Q and K
  by sqrt(1/sqrt(d)), two small elementwise kernels, is not priced, as before SDPA had an op kind).
  (PyTorch would pick its memory-efficient backend for fp32 on sm_50+; not modelled yet.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from gpusim.errors import OpError
from gpusim.lowering import Algorithm, FusedProblem
from gpusim.ops import ChannelField, Matmul, Op, Target, _positive, register, softmax

# FlashAttention-2's forward tiles per head dim (sm_80 / H100 choices, no dropout): (largest head dim,
# kBlockM query rows, kBlockN key rows, warps); flash_fwd_launch_template.h run_mha_fwd_hdim32..256.
FLASH_TILES: tuple[tuple[int, int, int, int], ...] = (
    (32, 128, 128, 4),
    (64, 128, 128, 4),
    (96, 128, 64, 4),
    (128, 128, 64, 4),
    (192, 128, 64, 8),
    (256, 128, 64, 8),
)
FLASH_DTYPES = ("fp16", "bf16")  # the flash backend's dtypes (sdp_utils.cpp check_flash_attention dtypes)
FLASH_MMA = (16, 8, 16)  # the MMA atom its sm_80 kernels are built from (cute SM80_16x8x16_F32F16F16F32_TN)
FLASH_HEAD_DIM_MULTIPLE = 8  # sdp_utils.cpp: flash needs head_dim % 8 == 0 and head_dim <= 256
HALF_BYTES = 2
MAX_REGISTERS = 255
# Registers per thread besides the fp32 accumulators of S (kBlockM x kBlockN) and O (kBlockM x head_dim):
# addresses, MMA fragments and the running softmax statistics. The accumulators alone fill 192 of the
# 255 a thread may use at head_dim 64, so the kernels run at (about) the maximum.
OTHER_REGISTERS = 64


@register
@dataclass(frozen=True)
class ScaledDotProductAttention(Op):
    """softmax(Q K^T / sqrt(d)) V for `batch` x `heads` independent heads: Q [q_len, head_dim], K and V
    [kv_len, head_dim] each (torch.nn.functional.scaled_dot_product_attention)."""

    kind: ClassVar[str] = "sdpa"
    precision: ClassVar[Literal["conv", "matmul", "storage"]] = "matmul"
    gemm: ClassVar[bool] = True
    host_overhead: ClassVar[str] = "host_overhead_gemm_us"
    zero_fields: ClassVar[tuple[str, ...]] = ("causal",)
    batch: int
    heads: int
    q_len: int
    kv_len: int
    head_dim: int
    causal: bool = False

    def __post_init__(self) -> None:
        _positive(
            "sdpa", batch=self.batch, heads=self.heads, q_len=self.q_len, kv_len=self.kv_len, head_dim=self.head_dim
        )
        if self.causal not in (0, 1):
            raise OpError(f"sdpa: causal must be 0 or 1 (false or true), got {self.causal}")

    @property
    def flops(self) -> int:
        """Q K^T and P V: 4 B H L_q L_k d; causal: half (FlashAttention-2 paper's count)."""
        full = 4 * self.batch * self.heads * self.q_len * self.kv_len * self.head_dim
        return full // 2 if self.causal else full

    def channel_fields(self) -> tuple[ChannelField, ...]:
        """Heads follow the attention's channels (head_dim channels each)."""
        return (ChannelField("heads", "out"),)

    def flash_tile(self) -> tuple[int, int, int, int] | None:
        """FlashAttention-2's (kHeadDim, kBlockM, kBlockN, warps) for this head dim; None if flash cannot run it."""
        if self.head_dim % FLASH_HEAD_DIM_MULTIPLE:
            return None
        return next((row for row in FLASH_TILES if self.head_dim <= row[0]), None)

    def lower(self, target: Target) -> list[Algorithm]:
        """The flash kernel where PyTorch's flash backend runs (module doc), else the math path."""
        tile = self.flash_tile()
        if target.dtype in FLASH_DTYPES and target.mma == FLASH_MMA and tile is not None:
            return [Algorithm("flash", (self._flash(tile, target),))]
        return [self._math(target)]

    def _flash(self, tile: tuple[int, int, int, int], target: Target) -> FusedProblem:
        hd, bm, bn, warps = tile
        threads = 32 * warps
        grid = -(-self.q_len // bm) * self.batch * self.heads
        smem = (bm + 2 * bn) * hd * HALF_BYTES
        regs = min(MAX_REGISTERS, bm * (bn + hd) // threads + OTHER_REGISTERS)
        qo = 2 * self.q_len * self.head_dim
        kv = 2 * self.kv_len * self.head_dim
        moved = float(self.batch * self.heads * (qo + kv) * target.elem_bytes)
        name = f"pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<{hd}, {bm}, {bn}, {warps}>>"
        return FusedProblem("flash", name, grid, threads, regs, smem, float(self.flops), moved, True)

    def _math(self, target: Target) -> Algorithm:
        heads = self.batch * self.heads
        scores = Matmul(heads, self.q_len, self.kv_len, self.head_dim)
        probs = softmax(heads * self.q_len, self.kv_len)
        out = Matmul(heads, self.q_len, self.head_dim, self.kv_len)
        problems = [p for op in (scores, probs, out) for algo in op.lower(target)[:1] for p in algo.problems]
        return Algorithm("math", tuple(problems))
