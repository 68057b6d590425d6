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
- otherwise, where PyTorch's memory-efficient backend runs (fp32, fp16 on sm_50+, bf16 on sm_80+; head dim a
  multiple of sdp_utils.cpp minimum_gemm_alignment): xformers' CUTLASS kernel
  (aten/src/ATen/native/transformers/cuda/mem_eff_attention): the kernel set of the largest CUTLASS ArchTag at or
  below the GPU's compute capability (kernels/cutlassF.h dispatch_cutlassF: Sm50, Sm70, Sm75, Sm80), the first
  kernel whose kMaxK covers the head dim (MEM_EFF_KERNELS). Grid ceil(L_q / kQueriesPerBlock) x heads x batch
  (kernel_forward.h getBlocksGrid), kQueriesPerBlock x kKeysPerBlock / 32^2 warps; its __launch_bounds__ ask for
  getWarpsPerSmFw (16 warps per SM for 16-bit types on Sm80, else 12) / warps blocks per SM, which sets the
  registers per thread. Math unit (gemm_kernel_utils.h DefaultGemmType): tensor cores for 16-bit types on
  Sm75+ and fp16 on Sm70; fp32 on Sm80+ on tensor cores as 3xTF32 (OpMultiplyAddFastF32: three TF32 MMAs
  per product, so a third of the TF32 rate); otherwise CUDA cores at the FP32 rate (the accumulator is
  fp32 whatever the inputs, so fp16 does not run at a P100's paired-FP16 rate). Shared memory (an estimate, not read off
  the kernel): the fp32 score tile (kQueriesPerBlock x kKeysPerBlock) and double-buffered Q and K tiles of
  the GEMM's K step (ThreadK: 32 on tensor cores, 8 on CUDA cores). FLOPs and DRAM as for flash.
- otherwise (head dims neither backend takes): the math path of
  aten/src/ATen/native/transformers/attention.cpp (_scaled_dot_product_attention_math): a batched
  Q K^T, softmax and a batched product with V, each as its own op kind lowers it (the scaling of Q and K
  by sqrt(1/sqrt(d)), two small elementwise kernels, is not priced, as before SDPA had an op kind).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
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
SCORE_BYTES = 4  # the score tile is fp32 (AccumulatorSharedStorage)
MEM_EFF_TILE_K = {True: 32, False: 8}  # K step of its GEMM tiles on tensor cores / CUDA cores (DefaultGemmType ThreadK)
MEM_EFF_STAGES = 2  # operand tiles in flight in shared memory (the estimate's double buffer)
REGISTER_FILE = 65536  # 32-bit registers per SM on every compute capability with these kernels (sm_50 to sm_100)
REGISTER_STEP = 8  # registers per thread are allocated in steps of 8 (256 per warp, cuda_occupancy.h)
# Registers per thread besides the fp32 accumulators of S (kBlockM x kBlockN) and O (kBlockM x head_dim):
# addresses, MMA fragments and the running softmax statistics. The accumulators alone fill 192 of the
# 255 a thread may use at head_dim 64, so the kernels run at (about) the maximum.
OTHER_REGISTERS = 64


@dataclass(frozen=True)
class MemEfficientKernels:
    """The memory-efficient backend's forward kernels of one CUTLASS ArchTag (PyTorch's mem_eff_attention)."""

    tiles: tuple[tuple[int, int, int], ...]  # (kQueriesPerBlock, kKeysPerBlock, kMaxK), dispatch order (cutlassF.h)
    dtypes: tuple[str, ...]  # dtypes it has kernels for (cutlassF.h dispatch_cutlassF)
    tensor: dict[str, tuple[str, int]]  # dtype on tensor cores: (the dtype whose rate, MMAs per product)
    warps_per_sm: dict[str, int]  # kernel_forward.h getWarpsPerSmFw: the launch bounds' warps per SM
    min_alignment: int  # sdp_utils.cpp minimum_gemm_alignment: head dim multiple before the tensor-core rule


# The ArchTag a compute capability runs: the largest at or below it (x 10: Sm80 = 80; newer GPUs take Sm80's).
_PRE_AMPERE_TILES = ((64, 64, 64), (32, 128, 128), (32, 128, 65536))
_TWELVE = {"fp32": 12, "fp16": 12}
MEM_EFF_KERNELS: dict[int, MemEfficientKernels] = {
    50: MemEfficientKernels(_PRE_AMPERE_TILES, ("fp32", "fp16"), {}, _TWELVE, 1),
    70: MemEfficientKernels(_PRE_AMPERE_TILES, ("fp32", "fp16"), {"fp16": ("fp16", 1)}, _TWELVE, 1),
    75: MemEfficientKernels(_PRE_AMPERE_TILES, ("fp32", "fp16"), {"fp16": ("fp16", 1)}, _TWELVE, 1),
    80: MemEfficientKernels(
        ((64, 64, 64), (64, 128, 128), (32, 128, 65536)),
        ("fp32", "fp16", "bf16"),
        {"fp16": ("fp16", 1), "bf16": ("bf16", 1), "fp32": ("tf32", 3)},  # fp32: 3xTF32 (OpMultiplyAddFastF32)
        {"fp32": 12, "fp16": 16, "bf16": 16},
        4,
    ),
}


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
        """The backend PyTorch's SDPA picks (module doc): flash, else memory-efficient, else the math path."""
        tile = self.flash_tile()
        if target.dtype in FLASH_DTYPES and target.mma == FLASH_MMA and tile is not None:
            return [Algorithm("flash", (self._flash(tile, target),))]
        efficient = self._mem_efficient(target)
        return [Algorithm("mem_efficient", (efficient,))] if efficient else self._math(target)

    def _moved_bytes(self, target: Target) -> float:
        """Q, K and V read and O written once."""
        qo = 2 * self.q_len * self.head_dim
        kv = 2 * self.kv_len * self.head_dim
        return float(self.batch * self.heads * (qo + kv) * target.elem_bytes)

    def _flash(self, tile: tuple[int, int, int, int], target: Target) -> FusedProblem:
        hd, bm, bn, warps = tile
        threads = 32 * warps
        grid = -(-self.q_len // bm) * self.batch * self.heads
        smem = (bm + 2 * bn) * hd * HALF_BYTES
        regs = min(MAX_REGISTERS, bm * (bn + hd) // threads + OTHER_REGISTERS)
        name = f"pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<{hd}, {bm}, {bn}, {warps}>>"
        return FusedProblem(
            "flash", name, grid, threads, regs, smem, float(self.flops), self._moved_bytes(target), True
        )

    def _mem_efficient(self, target: Target) -> FusedProblem | None:
        """The memory-efficient backend's kernel (module doc); None where that backend does not run."""
        scalar = "fp32" if target.dtype == "tf32" else target.dtype  # fp32 tensors either way
        tag = max((t for t in MEM_EFF_KERNELS if t <= target.cc), default=None)
        arch = MEM_EFF_KERNELS.get(tag)
        if arch is None or scalar not in arch.dtypes:
            return None
        tensor = scalar in arch.tensor
        # on CUDA cores the kernels accumulate in fp32 FFMA whatever the inputs (half2 math is not used)
        rate_dtype, passes = arch.tensor.get(scalar, ("fp32", 1))
        # with tensor cores the head dim must also be a multiple of 128 bits (minimum_gemm_alignment)
        alignment = max(arch.min_alignment, 128 // (8 * target.elem_bytes) if tensor else 1)
        if self.head_dim % alignment:
            return None
        bq, bk, max_k = next(row for row in arch.tiles if self.head_dim <= row[2])
        warps = bq * bk // (32 * 32)
        threads = 32 * warps
        blocks = arch.warps_per_sm[scalar] // warps
        regs = min(MAX_REGISTERS, REGISTER_FILE // (blocks * threads) // REGISTER_STEP * REGISTER_STEP)
        tile_k = MEM_EFF_TILE_K[tensor]
        smem = bq * bk * SCORE_BYTES + MEM_EFF_STAGES * (bq + bk) * tile_k * target.elem_bytes
        grid = -(-self.q_len // bq) * self.heads * self.batch
        kind = {4: "f32", 2: "bf16" if scalar == "bf16" else "f16"}[target.elem_bytes]
        name = f"fmha_cutlassF_{kind}_aligned_{bq}x{bk}_{'gmem' if max_k > 128 else 'rf'}_sm{tag}"
        return FusedProblem(
            "mem_efficient", name, grid, threads, regs, smem, float(self.flops), self._moved_bytes(target), tensor,
            rate_dtype if rate_dtype != scalar else "", passes,
        )  # fmt: skip

    def _math(self, target: Target) -> list[Algorithm]:
        """Q K^T, softmax, P V as three eager ops: one algorithm per combination of theirs (a bmm may also
        stream as a GEMV), so the fastest is what they cost priced alone."""
        heads = self.batch * self.heads
        scores = Matmul(heads, self.q_len, self.kv_len, self.head_dim)
        probs = softmax(heads * self.q_len, self.kv_len)
        out = Matmul(heads, self.q_len, self.head_dim, self.kv_len)
        return [
            Algorithm("math", tuple(p for algo in chosen for p in algo.problems))
            for chosen in product(*(op.lower(target) for op in (scores, probs, out)))
        ]
