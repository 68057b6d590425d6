"""Lowering: each op becomes one or more *algorithms*, each a list of kernel problems.

- linear, bmm: one GEMM in cuBLAS's column-major view (for nn.Linear, M = out features,
  N = rows, K = in features; for bmm, M = n, N = m: cuBLAS computes C^T = B^T A^T).
- dense and grouped conv: implicit GEMM (M = N*P*Q, N = K/groups, K = C/groups*R*S, one
  GEMM per group) and, for 3x3 stride-1 undilated dense conv on CUDA cores, Winograd:
  non-fused F(4x4, 3x3) (data, filter and output transforms plus 36 batched GEMMs, as
  cuDNN's winograd_nonfused) and fused F(2x2, 3x3) (one kernel doing 16 GEMMs of a
  2.25x smaller multiply count, as cuDNN's scudnn_winograd kernels).
- depthwise conv and memory-bound ops: streaming kernels (memory-bound ops as PyTorch launches
  them: gpusim.memory_ops).
The predictor prices every algorithm and keeps the fastest (cuDNN benchmark mode).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gpusim.engine import USE_BATCHED, USE_CONV, USE_FUSED_WINOGRAD, USE_LINEAR, USE_WINOGRAD
from gpusim.errors import OpError
from gpusim.ops import OP_KINDS, Arrangements, Conv2d, Linear, Matmul, Op, Target, _pair

# PyTorch's elementwise kernels: 128 threads, 4 elements per thread (ATen Loops.cuh).
STREAM_THREADS = 128
STREAM_WORK_PER_THREAD = 4
# Depthwise conv: 256 threads, one output per thread (ATen DepthwiseConv2d.cu).
DEPTHWISE_THREADS = 256
# A linear layer on this many rows (or of this many outputs) may also run as cuBLAS's GEMV (gemv2T kernels:
# 128 threads, a warp per row of the large operand, so 4 rows per CTA): a streaming pass over the weights (or
# the input rows), kept where it beats every GEMM tile (the fastest algorithm is kept, as for convolutions),
# so a batch-1 FP32 layer is never priced as a tile GEMM's strided operand strips.
GEMV_ROWS = 1
GEMV_THREADS = 128
GEMV_LANES_PER_ROW = 32
# On CUDA cores the same streaming pass serves up to this many rows (or outputs): cuBLAS's small-N kernel for "tn" GEMMs,
# gemmSN_TN_kernel<float, 128, 16, ...> (128 threads, at most 16 rows of the input per pass), which public
# profiles of FP32 nn.Linear calls on 4-16 rows show where a tile GEMM would read its weights as strided strips.
SMALL_N_ROWS = 16
# A streaming pass whose output rows make fewer CTAs than the GPU has SMs splits K across CTAs instead and
# sums the slices in a second kernel (rocBLAS's gemvt_sn_kernel + gemvt_sn_reduce, CUTLASS's split-K GEMV):
# a 16-output layer on K = 500,000 inputs is not read by 4 CTAs. Each slice keeps at least this many inputs,
# the split target of rocBLAS's skinny GEMV (4096 columns a block); the unsplit pass stays where it is faster.
GEMV_SPLIT_MIN_K = 4096


# Per cuBLAS layout suffix, the operand rows of an m x n x k GEMM stored contiguous along K, as
# (rows per m, rows per n): "tn" (nn.Linear) A and B, "nn" (torch.bmm, cuDNN's Winograd GEMMs) B alone;
# cuDNN's own kernels (no suffix) are not priced so.
K_MAJOR_ROWS: dict[str, tuple[int, int]] = {"tn": (1, 1), "nn": (0, 1), "": (0, 0)}


@dataclass(frozen=True)
class GemmProblem:
    """One GEMM launch to be tiled: C[m, n] = A[m, k] B[k, n], `batch` times."""

    m: int
    n: int
    k: int
    batch: int
    dram_bytes: float
    label: str = "gemm"
    use: int = USE_LINEAR  # which of the library's kernel lists applies (gpusim.kernels USE_*)
    layout: str = "tn"  # cuBLAS operand layout suffix of the kernel name ("" for cuDNN kernels)

    @property
    def k_major_rows(self) -> int:
        """Operand rows per batch entry stored contiguous along K: cuBLAS "tn" (nn.Linear) both A and B,
        m + n; "nn" B alone, n (K_MAJOR_ROWS)."""
        per_m, per_n = K_MAJOR_ROWS[self.layout]
        return per_m * self.m + per_n * self.n


@dataclass(frozen=True)
class StreamProblem:
    """One memory-bound launch: `work` outputs, bytes moved and FLOPs in total."""

    label: str
    work: int
    bytes_moved: float
    flops: float
    threads: int = STREAM_THREADS
    work_per_thread: int = STREAM_WORK_PER_THREAD
    dram_fraction: float = 0.0  # achieved fraction of DRAM peak; 0: the calibrated dram_efficiency


@dataclass(frozen=True)
class FusedProblem:
    """One fused kernel whose CTA the library fixes (not tiled from the kernel table), e.g. FlashAttention:
    `grid` CTAs of `threads` threads with `regs` registers per thread and `smem` bytes of shared memory,
    `flops` in all on tensor cores (`tensor`) or CUDA cores, and `dram_bytes` of compulsory traffic (the
    DRAM floor; re-reads within the kernel are served by L2, as for a GEMM's tiles). The rate is that of
    `rate_dtype` (default: the op's dtype), on tensor cores over `mma_passes` MMAs per product (3xTF32: 3).
    Priced with the engine's wave model (gpusim.engine.launch_waves)."""

    label: str
    kernel: str
    grid: int
    threads: int
    regs: int
    smem: int
    flops: float
    dram_bytes: float
    tensor: bool
    rate_dtype: str = ""
    mma_passes: int = 1


Problem = GemmProblem | StreamProblem | FusedProblem


@dataclass(frozen=True)
class Algorithm:
    """One way to run an op: its name and the kernel launches it makes, in order."""

    name: str
    problems: tuple[Problem, ...]


def lower(op: Op, target: Target) -> list[Algorithm]:
    """The algorithms that can run `op` on `target`: its kind's own `lower` (the gpusim.ops registry)."""
    if OP_KINDS.get(op.kind) is not type(op):
        raise OpError(f"op {type(op).__name__}: not a registered op kind; registered: {', '.join(OP_KINDS)}")
    return op.lower(target)


def lower_linear(op: Linear, target: Target) -> list[Algorithm]:
    """nn.Linear: cuBLAS's GEMM (M = out features, N = rows, K = in features) and, where either side is at
    most GEMV_ROWS (SMALL_N_ROWS on CUDA cores), its matrix-vector (small-N) kernel: a streaming pass over
    the larger operand, a warp per row of it (a batch of one or a few rows streams the weights; a layer of
    one or a few outputs, a regression or gate head, streams its input rows the same way)."""
    moved = op.operand_elements * target.elem_bytes
    gemm = Algorithm("gemm", (GemmProblem(op.out_features, op.batch, op.in_features, 1, moved),))
    narrow, wide = sorted((op.batch, op.out_features))
    return [gemm, *_streaming(narrow, wide, op.in_features, moved, float(op.flops), target)]


def lower_bmm(op: Matmul, target: Target) -> list[Algorithm]:
    """torch.bmm: cuBLAS's strided-batched GEMM (M = n, N = m: cuBLAS computes C^T = B^T A^T) and, where m
    or n is at most GEMV_ROWS (SMALL_N_ROWS on CUDA cores), the batched matrix-vector pass (one query row
    against a cache of keys: a 128-row tile would compute 127 padding rows per real one)."""
    moved = op.operand_elements * target.elem_bytes
    gemm = Algorithm("gemm", (GemmProblem(op.n, op.m, op.k, op.batch, moved, "gemm", USE_BATCHED, "nn"),))
    narrow, wide = sorted((op.m, op.n))
    return [gemm, *_streaming(narrow, op.batch * wide, op.k, moved, float(op.flops), target)]


def _streaming(narrow: int, wide: int, k: int, moved: float, flops: float, target: Target) -> list[Algorithm]:
    """The GEMV / small-N pass of a GEMM whose small side has `narrow` rows: a warp per row of the `wide`
    side reads its K inputs once for all `narrow` outputs; where those warps make fewer CTAs than SMs, also
    split K (slices of at least GEMV_SPLIT_MIN_K) with a reduction of the fp32 partials. None above the
    small-N limit."""
    if narrow > (SMALL_N_ROWS if target.simt else GEMV_ROWS):
        return []
    name = "gemv" if narrow <= GEMV_ROWS else "gemm_small_n"
    lanes = wide * GEMV_LANES_PER_ROW
    algos = [Algorithm(name, (StreamProblem(name, lanes, moved, flops, GEMV_THREADS, 1),))]
    split = min(math.ceil(target.sms * GEMV_THREADS / lanes), k // GEMV_SPLIT_MIN_K)  # CTAs = SMs
    if split > 1:  # fp32 partial sums: written once by the slices, read back by the reduction
        outputs = narrow * wide
        partials = 4.0 * split * outputs
        sliced = StreamProblem(name, lanes * split, moved + partials, flops, GEMV_THREADS, 1)
        reduce = StreamProblem("splitk_reduce", outputs, partials + outputs * target.elem_bytes, float(split * outputs))
        algos.append(Algorithm(f"{name}_split_k", (sliced, reduce)))
    return algos


def lower_conv(op: Conv2d, target: Target) -> list[Algorithm]:
    """Implicit GEMM and (CUDA cores, 3x3 stride 1) Winograd, or the depthwise kernel."""
    return _lower_conv(op, target.elem_bytes, target.simt, target.fused_tiles)


def _lower_conv(op: Conv2d, elem_bytes: int, simt: bool, fused_tiles: Arrangements) -> list[Algorithm]:
    kh, kw = _pair(op.kernel_size)
    p, q = op.out_hw
    cin_g, cout_g = op.in_channels // op.groups, op.out_channels // op.groups
    x_elems = op.batch * op.in_channels * op.height * op.width
    y_elems = op.batch * op.out_channels * p * q
    w_elems = op.out_channels * cin_g * kh * kw
    moved = (x_elems + w_elems + y_elems) * elem_bytes
    if op.is_depthwise:  # ATen's conv_depthwise2d kernel: one output per thread, streaming its input once
        from gpusim.memory_ops import STREAM_DRAM_FRACTION

        depthwise = StreamProblem(
            "depthwise", y_elems, moved, float(op.flops), DEPTHWISE_THREADS, 1, dram_fraction=STREAM_DRAM_FRACTION
        )
        return [Algorithm("depthwise", (depthwise,))]
    # CUDA-core implicit GEMM runs cuDNN's scudnn_* kernels, whose efficiency is calibrated per family
    gemm = GemmProblem(
        op.batch * p * q, cout_g, cin_g * kh * kw, op.groups, moved, "implicit_gemm" if simt else "gemm", USE_CONV, ""
    )
    # cuDNN's CUDA-core implicit GEMM first runs a small kernel computing the filter offsets
    # (computeOffsetsKernel, recorded before every scudnn kernel); its tensor-core kernels do not.
    offsets = StreamProblem("compute_offsets", cin_g * kh * kw, 8.0 * cin_g * kh * kw, 0.0)
    algos = [Algorithm("implicit_gemm", (offsets, gemm) if simt else (gemm,))]
    winograd_ok = (
        simt and op.groups == 1 and (kh, kw) == (3, 3) and _pair(op.stride) == (1, 1) and _pair(op.dilation) == (1, 1)
    )
    if winograd_ok:
        algos += [_winograd_nonfused(op, p, q, elem_bytes), *_winograd_fused(op, p, q, elem_bytes, moved, fused_tiles)]
    return algos


def _winograd_nonfused(op: Conv2d, p: int, q: int, elem_bytes: int) -> Algorithm:
    """F(4x4, 3x3): 6x6 input tiles, 36 GEMMs of [tiles x C] @ [C x K]."""
    tiles = op.batch * -(-p // 4) * -(-q // 4)
    c, k = op.in_channels, op.out_channels
    x_in = op.batch * c * op.height * op.width
    data = StreamProblem(
        "winograd_data_transform", tiles * c, (x_in + 36 * tiles * c) * elem_bytes, 36.0 * tiles * c * 4
    )
    filt = StreamProblem("winograd_filter_transform", k * c, (9 + 36) * k * c * elem_bytes, 36.0 * k * c * 4)
    gemm = GemmProblem(
        tiles, k, c, 36, 36 * (tiles * c + c * k + tiles * k) * elem_bytes, "winograd_gemm", USE_WINOGRAD, "nn"
    )
    out = StreamProblem(
        "winograd_output_transform",
        tiles * k,
        (36 * tiles * k + op.batch * k * p * q) * elem_bytes,
        36.0 * tiles * k * 4,
    )
    return Algorithm("winograd_nonfused", (data, filt, gemm, out))


# cuDNN's fused Winograd F(2x2, 3x3) kernels (scudnn_winograd_128x128_..._tileIYX): one CTA computes 32
# output channels of 32 Winograd tiles (2x2 outputs each) arranged as I images x Y rows x X columns of
# tiles (the digits in the kernel name), looping over all input channels; grid = ceil(N/I) *
# ceil(P/2Y) * ceil(Q/2X) * ceil(K/32) (exact on all 7,000 recorded fused rows). Which arrangements a
# GPU's cuDNN ships is an architecture fact (hw_specs/compute_capability, `fused_winograd_tiles`):
# Pascal's (maxwell_* kernels) six, Volta and newer only tile148.
FUSED_WINOGRAD_CHANNELS = 32


def fused_winograd_grid(batch: int, p: int, q: int, k: int, arrangement: tuple[int, int, int]) -> tuple[int, int]:
    """(spatial CTAs, channel CTAs) of one fused Winograd kernel arrangement (images, tile rows, tile columns)."""
    i, y, x = arrangement
    return -(-batch // i) * -(-p // (2 * y)) * -(-q // (2 * x)), -(-k // FUSED_WINOGRAD_CHANNELS)


def _winograd_fused(
    op: Conv2d, p: int, q: int, elem_bytes: int, moved: float, arrangements: Arrangements
) -> list[Algorithm]:
    """F(2x2, 3x3) in one kernel, after a filter-transform kernel (generateWinogradTilesKernel).

    A CTA does 16 GEMMs of 32 tiles x 32 channels x C: the work of one 128x128 GEMM tile over K = C,
    so each arrangement is priced as a GEMM whose 128x128 tiles are exactly its CTAs."""
    c, k = op.in_channels, op.out_channels
    filt = StreamProblem("winograd_tiles", k * c, (9 + 16) * k * c * elem_bytes, 16.0 * k * c * 4)
    algos, seen = [], set()
    for arrangement in arrangements:
        spatial, channel = fused_winograd_grid(op.batch, p, q, k, arrangement)
        if spatial in seen:
            continue
        seen.add(spatial)
        gemm = GemmProblem(spatial * 128, channel * 128, c, 1, moved, "winograd_fused", USE_FUSED_WINOGRAD, "")
        algos.append(Algorithm("winograd_fused", (filt, gemm)))
    return algos
