"""The kernel catalogue: GEMM tile descriptions per architecture, as data (after CUTLASS's TileDescription).

Each row is one kernel a library really ships: CTA tile BM x BN x BK, threads, pipeline
stages, in-CTA K slices (cuBLAS's "sliced1x4"), the math it uses and the compute
capabilities it runs on. The kernel's printed name is derived from the row so that it can
be matched against names recorded by the profiler (e.g. `volta_sgemm_128x64`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from gpusim.dtypes import DTYPE_BYTES
from gpusim.spec import GpuSpec

# Tensor-op tiles load K in 64-byte slabs; their BK is 64 bytes / element size.
_TENSOR_K_BYTES = 64


# What a kernel is launched for (bit mask): the library's kernel lists differ per use.
USE_LINEAR = 1  # cuBLAS GEMM as nn.Linear calls it (cuBLAS "tn"), split-K allowed where the row says so
USE_BATCHED = 2  # cuBLAS strided-batched GEMM (torch.bmm, cuBLAS "nn"); grid z = batch, never split
USE_WINOGRAD = 4  # the batched GEMM inside cuDNN's non-fused Winograd (36 GEMMs, grid z = 36)
USE_CONV = 8  # cuDNN implicit-GEMM convolution kernels (scudnn_*)
USE_FUSED_WINOGRAD = 16  # cuDNN fused Winograd kernels (scudnn_winograd_*)
USE_ANY = 31


@dataclass(frozen=True)
class TileDescription:
    """One GEMM kernel: its CTA tile, launch shape, what it is launched for and where it runs."""

    math: str  # "simt" (CUDA cores) or "tensorop" (tensor cores)
    bm: int
    bn: int
    threads: int
    stages: int
    min_cc: int  # compute capability x10, inclusive
    max_cc: int  # inclusive
    k_slices: int = 1  # in-CTA split of K across warp groups
    bk_simt: int = 8
    uses: int = USE_ANY
    split_k: bool = True  # the library may launch it with split-K (grid z > 1) for linear GEMMs
    default: bool = False  # the library's default kernel for its uses: others must be clearly faster
    style: str = "cublas"  # naming: "cublas", "sgemm_nt" (Pascal sm61's sgemm_128x128x8), "scudnn", "scudnn_winograd"

    def bk(self, dtype: str) -> int:
        """K depth of one main-loop step for dtype."""
        return self.bk_simt if self.math == "simt" else _TENSOR_K_BYTES // DTYPE_BYTES[dtype]

    def shared_memory(self, dtype: str) -> int:
        """Shared memory per CTA in bytes: stages x (A tile + B tile) x element size x K slices."""
        return self.stages * (self.bm + self.bn) * self.bk(dtype) * DTYPE_BYTES[dtype] * self.k_slices

    def registers(self) -> int:
        """Registers per thread: fp32 accumulators per thread plus addressing and staging (~56), at most 255."""
        accumulators = self.bm * self.bn * self.k_slices // self.threads
        return min(255, accumulators + 56)

    def name(self, spec: GpuSpec, dtype: str, layout: str = "") -> str:
        """The kernel name as the library prints it (architecture prefix, instruction, tile, layout)."""
        cc = spec.cc_major_minor[0] * 10 + spec.cc_major_minor[1]
        prefix = "maxwell" if cc < 70 else "volta" if cc < 80 else "ampere" if cc < 90 else "sm90"
        sliced = f"_sliced1x{self.k_slices}" if self.k_slices > 1 else ""
        tail = f"_{layout}" if layout else ""
        if self.style == "sgemm_nt":
            return f"sgemm_{self.bm}x{self.bn}x{self.bk_simt}_NT_vec"
        if self.style == "scudnn":
            return f"cudnn_infer_{prefix}_scudnn_{self.bm}x{self.bn}{sliced}_relu_small_nn_v1"
        if self.style == "scudnn_winograd":
            return f"cudnn_infer_{prefix}_scudnn_winograd_{self.bm}x{self.bn}_ldg1_ldg4_relu_tile148t_nt_v1"
        if self.math == "simt":
            return f"{prefix}_sgemm_{self.bm}x{self.bn}{sliced}{tail}"
        instr = {70: "h884", 75: "h1688"}.get(cc, "h16816")
        if dtype in ("tf32", "fp32"):
            instr = "s1688" if cc < 90 else "s16816"
        elif dtype == "int8":
            instr = "i8816" if cc < 80 else "i16832"
        elif dtype == "bf16":
            instr = "bf16816"
        prefix = "turing" if cc == 75 else prefix
        return f"{prefix}_{instr}gemm_{self.bm}x{self.bn}_{self.bk(dtype)}x{self.stages}{tail}"


def _simt(
    bm: int,
    bn: int,
    threads: int,
    min_cc: int,
    max_cc: int,
    uses: int,
    k_slices: int = 1,
    split_k: bool = True,
    style: str = "cublas",
    default: bool = False,
) -> TileDescription:
    return TileDescription("simt", bm, bn, threads, 2, min_cc, max_cc, k_slices, 8, uses, split_k, default, style)


L, B, W, C, F = USE_LINEAR, USE_BATCHED, USE_WINOGRAD, USE_CONV, USE_FUSED_WINOGRAD
# CUDA-core (FP32) kernels per compute capability, as cuBLAS 12.1 / cuDNN 8.9 launch them: the
# names, threads and uses are those recorded in ../shared/data/measured/neusight (Kernel Name,
# Block x; linear rows are "tn", bmm and Winograd GEMMs "nn"). cuBLAS launches only these for
# each use; among them the library's heuristic picks (modelled as the fastest predicted), with
# split-K where the row allows it (sm60-75; sm80+ uses in-CTA sliced-K kernels instead). The
# library's default kernel for a use (`default`) is kept unless another is predicted clearly faster
# (engine.PREFERENCE_MARGIN): heuristics are conservative, and the recorded names show it.
_SIMT = [
    # sm60 (P100; also Maxwell sm5x by nearest): linear 32x128 / 64x64 (split-K), bmm 128x64, Winograd GEMM 32x128 / 64x64.
    _simt(32, 128, 256, 50, 60, L | W, default=True),
    _simt(64, 64, 64, 50, 60, L | W),
    _simt(128, 64, 128, 50, 60, B),
    # sm61 (P4, GP102): linear sgemm_128x128x8 (grid = tiles, never split), bmm 128x64 / 128x128.
    _simt(128, 128, 256, 61, 69, L, split_k=False, style="sgemm_nt"),
    _simt(128, 64, 128, 61, 69, B, default=True),
    _simt(128, 128, 256, 61, 69, B),
    _simt(64, 64, 64, 61, 69, W),
    _simt(32, 128, 256, 61, 69, W),
    # sm70 (V100): the full cuBLAS SIMT set for linear, incl. sliced1x4; bmm 32x128 / 64x64.
    _simt(128, 128, 256, 70, 74, L, default=True),
    _simt(128, 64, 128, 70, 74, L),
    _simt(128, 32, 256, 70, 74, L | W),
    _simt(32, 128, 256, 70, 74, L | B | W),
    _simt(64, 64, 64, 70, 74, B | W),
    _simt(128, 32, 256, 70, 74, L, k_slices=4),
    _simt(64, 32, 256, 70, 74, L, k_slices=4),
    # sm75 (T4): linear 128x128 / 128x64 / 64x64 (split-K); bmm and Winograd 128x64 / 128x32 / 64x64.
    _simt(128, 128, 256, 75, 79, L, default=True),
    _simt(128, 64, 128, 75, 79, L | B | W, default=True),
    _simt(64, 64, 64, 75, 79, L | B | W),
    _simt(128, 32, 256, 75, 79, B | W),
    # sm80+ (A100; newer GPUs' FP32 SIMT path by nearest family): linear without split-K, sliced1x4
    # kernels for deep K; bmm always 128x128.
    _simt(128, 128, 256, 80, 99, L | B | W, split_k=False),
    _simt(128, 64, 128, 80, 99, L | W, split_k=False, default=True),
    _simt(128, 32, 256, 80, 99, L, split_k=False),
    _simt(32, 128, 256, 80, 99, L, split_k=False),
    _simt(64, 64, 64, 80, 99, L | W, split_k=False),
    _simt(128, 32, 256, 80, 99, L, k_slices=4, split_k=False),
    _simt(64, 32, 256, 80, 99, L, k_slices=4, split_k=False),
    _simt(32, 32, 128, 80, 99, L, k_slices=4, split_k=False),
    # cuDNN implicit-GEMM (scudnn_128xN, M = N*P*Q, N = out channels) and fused Winograd kernels, all CCs.
    _simt(128, 128, 256, 50, 99, C, style="scudnn"),
    _simt(128, 64, 128, 50, 99, C, style="scudnn"),
    _simt(128, 32, 64, 50, 99, C, style="scudnn"),
    _simt(128, 128, 256, 50, 99, F, style="scudnn_winograd"),
]
del L, B, W, C, F

# cuBLAS (sm80+, FP32) launches a sliced1x4 kernel for nn.Linear when K exceeds this many times the
# count of 128x128 output tiles, and a plain one otherwise: the rule holds on 86% of the recorded
# A100 rows (sliced share by K / tiles: 0% up to 2, 12-34% at 4-32, 40% at 32-64, 68% at 64-128,
# 87% beyond); a fastest-kernel choice picked the plain 128x64 for most deep-K rows.
SLICED_K_GATE = 32.0

# Tensor-core tiles (CUTLASS defaults; GPU_FACTS.md "Kernels"): 2 stages before SM80, multistage after.
_TENSOR = [
    *(
        TileDescription("tensorop", bm, bn, t, 2, 70, 79)
        for bm, bn, t in (
            (256, 128, 256),
            (128, 256, 256),
            (128, 128, 256),
            (128, 64, 128),
            (64, 128, 128),
            (64, 64, 128),
        )
    ),
    *(
        TileDescription("tensorop", bm, bn, t, s, 80, 89)
        for bm, bn, t, s in (
            (256, 128, 256, 3),
            (128, 256, 256, 3),
            (128, 128, 256, 4),
            (128, 64, 128, 6),
            (64, 128, 128, 6),
            (64, 64, 128, 10),
        )
    ),
    *(
        TileDescription("tensorop", bm, bn, t, s, 90, 99)
        for bm, bn, t, s in (
            (256, 128, 256, 4),
            (128, 256, 256, 4),
            (128, 128, 256, 4),
            (128, 64, 128, 6),
            (64, 128, 128, 6),
            (64, 64, 128, 8),
        )
    ),
]

# Columns of the tile table the engine reads.
TILE_COLUMNS: tuple[str, ...] = (
    "bm",
    "bn",
    "bk",
    "threads",
    "regs",
    "smem",
    "k_slices",
    "tensor",
    "uses",
    "split_k",
    "default",
)


def uses_tensor_cores(spec: GpuSpec, dtype: str) -> bool:
    """Whether GEMMs of dtype run on tensor cores on this GPU."""
    cc = spec.cc_major_minor[0] * 10 + spec.cc_major_minor[1]
    if dtype == "fp32" or not spec.has_native(dtype):
        return False
    if dtype in ("fp16",):
        return cc >= 70
    if dtype == "int8":
        return cc >= 75
    return cc >= 80  # tf32, bf16


@lru_cache(maxsize=256)
def _tile_table(cc: int, tensor: bool, dtype: str) -> tuple[tuple[TileDescription, ...], np.ndarray]:
    pool = _TENSOR if tensor else _SIMT
    tiles = tuple(t for t in pool if t.min_cc <= cc <= t.max_cc)
    staged = dtype if tensor else "fp32"  # CUDA-core kernels stage operands as fp32
    table = np.array(
        [
            [
                t.bm,
                t.bn,
                t.bk(staged),
                t.threads,
                t.registers(),
                t.shared_memory(staged),
                t.k_slices,
                int(tensor),
                t.uses,
                int(t.split_k),
                int(t.default),
            ]
            for t in tiles
        ],
        dtype=np.int64,
    )
    return tiles, table.reshape(len(tiles), len(TILE_COLUMNS))


def gemm_tiles(spec: GpuSpec, dtype: str) -> tuple[tuple[TileDescription, ...], np.ndarray]:
    """The GEMM kernels available for dtype on spec, and their int64 table (TILE_COLUMNS)."""
    cc = spec.cc_major_minor[0] * 10 + spec.cc_major_minor[1]
    return _tile_table(cc, uses_tensor_cores(spec, dtype), dtype)
