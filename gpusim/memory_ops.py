"""Memory-bound kernels as eager PyTorch launches them: grids and bytes (docs/networks.md).

- elementwise ops, batch norm (inference: one scale and shift per element), casts, windowed
  pooling, softmax and layer norm: streaming kernels covering their outputs with PyTorch's
  elementwise launch shape (gpusim.lowering.STREAM_THREADS x STREAM_WORK_PER_THREAD per CTA);
- reductions (global average pooling, mean, sum): the grid of ATen's reduction kernel
  (aten/src/ATen/native/cuda/Reduce.cuh, setReduceConfig): block from the reduced and kept
  sizes, split across warps and, when each thread would still sum >= 256 values and the outputs
  fill less than one wave, across CTAs that meet through a global semaphore (cleared by a memset
  launch before the kernel).

Every streaming kernel moves its bytes at STREAM_DRAM_FRACTION of the DRAM peak: plain streaming
kernels sustain 85-90% of it (GPU_FACTS.md "Launch overhead ... Achievable DRAM bandwidth"), well
above the fraction fitted to GEMM traffic.
"""

from __future__ import annotations

from gpusim.lowering import Algorithm, StreamProblem
from gpusim.ops import MemoryOp

# Achieved fraction of peak DRAM bandwidth of a plain streaming kernel (GPU_FACTS.md: 85-90%).
STREAM_DRAM_FRACTION = 0.875
# Reduce.cuh: reduce_kernel<512>, 4 values per thread per step (vt0) and 4-wide vector loads when the
# reduced dimension is the innermost one and longer than 128.
REDUCE_MAX_THREADS = 512
REDUCE_VT0 = 4
REDUCE_VECTORIZE_ABOVE = 128
REDUCE_MIN_VALUES_PER_THREAD = 16
REDUCE_MAX_VALUES_PER_THREAD = 256
WARP = 32


def _last_pow2(n: int) -> int:
    """Largest power of two <= n (at least 1), as Reduce.cuh's last_pow2."""
    return max(1, 1 << (max(n, 1).bit_length() - 1))


def reduce_config(num_outputs: int, inputs_per_output: int, sms: int, threads_per_sm: int) -> tuple[int, int, int]:
    """(CTAs, threads per CTA, CTAs per output) of ATen's reduction kernel for a reduction over the
    innermost, contiguous `inputs_per_output` elements of each of `num_outputs` outputs.

    Follows setReduceConfig: block.x spans the reduced dimension (a warp at most, after 4-wide
    vectorisation when it is longer than 128), block.y the outputs, 512 threads at most; the input is
    split across the block's warps when each thread would sum at least 16 x block.y (or 256) values,
    and across CTAs (global reduction) when it would still sum >= 256 and the outputs fill at most
    one wave of the GPU (sms x threads_per_sm / threads CTAs): max(min(wave / outputs' CTAs,
    values / 16), values / 256) CTAs per output."""
    dim0 = inputs_per_output
    if dim0 > REDUCE_VECTORIZE_ABOVE:
        dim0 //= REDUCE_VT0
    dim0_pow2 = min(_last_pow2(dim0), REDUCE_MAX_THREADS)
    dim1_pow2 = min(_last_pow2(num_outputs), REDUCE_MAX_THREADS)
    width = min(dim0_pow2, WARP)
    height = min(dim1_pow2, REDUCE_MAX_THREADS // width)
    width = min(dim0_pow2, REDUCE_MAX_THREADS // height)
    threads = width * height
    step_input, step_output = width, 1
    values = -(-inputs_per_output // step_input)
    across_warps = values >= height * REDUCE_MIN_VALUES_PER_THREAD or values >= REDUCE_MAX_VALUES_PER_THREAD
    if across_warps:
        step_input *= height
    else:
        step_output *= height
    values = -(-inputs_per_output // step_input)
    grid_x = -(-num_outputs // step_output)
    target = sms * max(1, threads_per_sm // threads)
    ctas = 1
    if across_warps and values >= REDUCE_MAX_VALUES_PER_THREAD and grid_x <= target:
        ctas = max(
            min(-(-target // grid_x), -(-values // REDUCE_MIN_VALUES_PER_THREAD)),
            -(-values // REDUCE_MAX_VALUES_PER_THREAD),
        )
    return grid_x * ctas, threads, ctas


def lower_memory(op: MemoryOp, elem_bytes: int, sms: int, threads_per_sm: int) -> Algorithm:
    """The launches of one memory-bound op, in order, with the bytes they move (element sizes from
    the op's in_bytes / out_bytes where set, else `elem_bytes`)."""
    moved = op.elements_in * (op.in_bytes or elem_bytes) + op.elements_out * (op.out_bytes or elem_bytes)
    if op.kind != "reduce":
        return Algorithm(
            op.kind, (StreamProblem(op.kind, op.elements_out, moved, op.flops, dram_fraction=STREAM_DRAM_FRACTION),)
        )
    grid, threads, ctas = reduce_config(op.elements_out, op.elements_in // op.elements_out, sms, threads_per_sm)
    kernel = StreamProblem(
        "reduce", grid * threads, moved, float(op.elements_in), threads, 1, dram_fraction=STREAM_DRAM_FRACTION
    )
    if ctas == 1:
        return Algorithm("reduce", (kernel,))
    semaphores = StreamProblem("reduce_semaphore_memset", -(-grid // ctas), 4.0 * grid / ctas, 0.0)
    return Algorithm("reduce_global", (semaphores, kernel))
