"""Lowering: each op becomes the kernel problems a library would launch for it.

Dense and grouped conv are implicit GEMMs (M = N*P*Q, N = K/groups, K = C/groups*R*S, one
GEMM per group); linear and bmm are GEMMs; depthwise conv and memory-bound ops are
streaming kernels with one thread per few outputs.
"""
from __future__ import annotations

from dataclasses import dataclass

from gpusim.ops import Conv2d, Linear, Matmul, MemoryOp, Op, _pair
from gpusim.errors import OpError

# PyTorch's elementwise kernels: 128 threads, 4 elements per thread (ATen Loops.cuh).
STREAM_THREADS = 128
STREAM_WORK_PER_THREAD = 4
# Depthwise conv: 256 threads, one output per thread (ATen DepthwiseConv2d.cu).
DEPTHWISE_THREADS = 256


@dataclass(frozen=True)
class GemmProblem:
    """One GEMM launch to be tiled: C[m, n] = A[m, k] B[k, n], `batch` times."""

    op_index: int
    m: int
    n: int
    k: int
    batch: int
    dram_bytes: float


@dataclass(frozen=True)
class StreamProblem:
    """One memory-bound launch: `work` outputs, bytes moved and FLOPs in total."""

    op_index: int
    label: str
    work: int
    bytes_moved: float
    flops: float
    threads: int
    work_per_thread: int


Problem = GemmProblem | StreamProblem


def lower(op: Op, index: int, elem_bytes: int) -> list[Problem]:
    """The kernel problems one op launches, tagged with the op's position `index`."""
    if isinstance(op, Conv2d):
        return [_lower_conv(op, index, elem_bytes)]
    if isinstance(op, Linear):
        moved = (op.batch * op.in_features + op.in_features * op.out_features + op.batch * op.out_features) * elem_bytes
        return [GemmProblem(index, op.batch, op.out_features, op.in_features, 1, moved)]
    if isinstance(op, Matmul):
        moved = op.batch * (op.m * op.k + op.k * op.n + op.m * op.n) * elem_bytes
        return [GemmProblem(index, op.m, op.n, op.k, op.batch, moved)]
    if isinstance(op, MemoryOp):
        moved = (op.elements_in + op.elements_out) * elem_bytes
        return [StreamProblem(index, op.kind, op.elements_out, moved, op.flops, STREAM_THREADS, STREAM_WORK_PER_THREAD)]
    raise OpError(f"op {type(op).__name__}: no lowering; allowed: Conv2d, Linear, Matmul, MemoryOp")


def _lower_conv(op: Conv2d, index: int, elem_bytes: int) -> Problem:
    kh, kw = _pair(op.kernel_size)
    p, q = op.out_hw
    cin_g, cout_g = op.in_channels // op.groups, op.out_channels // op.groups
    moved = (op.batch * op.in_channels * op.height * op.width + op.out_channels * cin_g * kh * kw
             + op.batch * op.out_channels * p * q) * elem_bytes
    if op.is_depthwise:
        work = op.batch * op.out_channels * p * q
        return StreamProblem(index, "depthwise", work, moved, float(op.flops), DEPTHWISE_THREADS, 1)
    return GemmProblem(index, op.batch * p * q, cout_g, cin_g * kh * kw, op.groups, moved)
