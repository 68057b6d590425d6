"""The kernel catalogue: GEMM tile descriptions per architecture, as data (after CUTLASS's TileDescription).

Each row is one kernel a library really ships: CTA tile BM x BN x BK, threads, pipeline
stages, in-CTA K slices (cuBLAS's "sliced1x4"), the math it uses and the compute
capabilities it runs on. The kernel's printed name is derived from the row so that it can
be matched against names recorded by the profiler (e.g. `volta_sgemm_128x64`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from gpusim.dtypes import DTYPE_BYTES
from gpusim.engine import (
    TILE_COLUMNS,
    USE_ANY,
    USE_BATCHED,
    USE_CONV,
    USE_FUSED_WINOGRAD,
    USE_LINEAR,
    USE_WINOGRAD,
)
from gpusim.errors import SpecError
from gpusim.spec import GpuSpec

__all__ = ["USE_BATCHED", "USE_CONV", "USE_FUSED_WINOGRAD", "USE_LINEAR", "USE_WINOGRAD", "KernelTable"]

# Tensor-op tiles load K in slabs of this many bytes (BK = bytes / element size): 64 for the mma.sync
# tiles of sm70-sm89 (CUTLASS GenerateSM80_TensorOp_16816: K = 32 fp16), 128 for the WGMMA and tcgen05
# tiles of sm90/sm100 (GenerateSM90_TensorOp_16b_WGMMA_gemm: K = 4 x the instruction's 16 = 64 fp16).
_TENSOR_K_BYTES = 64
# The newest rows run on every later compute capability, as CUTLASS's generator writes max_cc = 1024.
OPEN_CC = 1024


@dataclass(frozen=True)
class TileDescription:
    """One GEMM kernel: its CTA tile, launch shape, what it is launched for and where it runs."""

    math: str  # "simt" (CUDA cores) or "tensorop" (tensor cores)
    bm: int
    bn: int
    threads: int
    stages: int
    min_cc: int  # kernel table (compute capability x10) it first ships in, inclusive
    max_cc: int  # inclusive; OPEN_CC for the newest rows
    k_slices: int = 1  # in-CTA split of K across warp groups
    bk_simt: int = 8
    uses: int = USE_ANY
    split_k: bool = True  # the library may launch it with split-K (grid z > 1) for linear GEMMs
    # K per split slice where the library fixes it: a linear launch always runs grid z = ceil(K / chunk)
    # (0: the factor is the engine's choice among engine.SPLIT_OPTIONS)
    split_k_chunk: int = 0
    # a split-K launch accumulates its slices into C itself (no second kernel): the sm60-75 maxwell_ /
    # volta_sgemm kernels, whose recorded kernel lists (NeuSight `Kernels`) name no other kernel on any of
    # their 529 split launches; else the fp32 partials are summed by a reduction kernel
    split_in_place: bool = False
    default: bool = False  # the library's default kernel for its uses: others must be clearly faster
    style: str = "cublas"  # naming: "cublas", "sgemm_nt" (Pascal sm61's sgemm_128x128x8), "xmma_ffma" (sm90's
    # FP32 GEMMs), "scudnn",
    # "scudnn_winograd", "xmma" (cuBLAS's sm90+ names: tile size and cluster shape)
    k_bytes: int = _TENSOR_K_BYTES  # tensor-op tiles: bytes of K per main-loop step
    # thread-block cluster (CTAs along the grid's x = M tiles, y = N tiles): the grid rounds up to whole
    # clusters, and a cluster's CTAs run at the same time (engine: whole clusters per wave)
    cluster: tuple[int, int] = (1, 1)
    # CTAs that share one MMA's B operand: 2 for Blackwell's 2-SM tcgen05 MMA (a CTA pair computes a
    # 2*BM x BN tile, each CTA loads its BM rows of A and half of B)
    b_split: int = 1
    tmem_accumulators: bool = False  # sm100: accumulators in tensor memory, not registers
    # CUTLASS 3 kernels (sm90/sm100) default to a persistent tile scheduler (generator.py's
    # CreateGemmUniversal3xOperator: tile_schedulers = [TileSchedulerType.Persistent]): the grid is at most
    # the CTAs that fit at once, each looping over output tiles, so the recorded grid is not the tile count
    persistent: bool = False
    # CTA rasterisation of a linear ("tn") launch: consecutive CTAs cover this many N tiles (grid y) per M
    # tile before the next M tile, so one wave reads the operand strips of bands of M tiles x `raster` N
    # tiles (engine.operand_strip_time); 1 is a plain row raster, 8 CUTLASS's default swizzle (Identity8)
    raster: int = 1

    def bk(self, dtype: str) -> int:
        """K depth of one main-loop step for dtype."""
        return self.bk_simt if self.math == "simt" else self.k_bytes // DTYPE_BYTES[dtype]

    def operand_rows(self) -> int:
        """Operand rows one CTA loads per K step: its BM rows of A and its share of B's BN."""
        return self.bm + self.bn // self.b_split

    def shared_memory(self, dtype: str) -> int:
        """Shared memory per CTA in bytes: stages x (A tile + B share) x element size x K slices."""
        return self.stages * self.operand_rows() * self.bk(dtype) * DTYPE_BYTES[dtype] * self.k_slices

    def registers(self) -> int:
        """Registers per thread: fp32 accumulators per thread (none where they live in tensor memory) plus
        addressing and staging (~56), at most 255."""
        accumulators = 0 if self.tmem_accumulators else self.bm * self.bn * self.k_slices // self.threads
        return min(255, accumulators + 56)

    def name(self, spec: GpuSpec, dtype: str, layout: str = "", vector_rows: bool = True) -> str:
        """The kernel name as the library prints it (architecture prefix, instruction, tile, layout), from
        the compute capability's facts (spec.arch: kernel_prefix, tensor_cores). `vector_rows`: the K-major
        operand rows are 16-byte aligned; sm61's sgemm_128x128x8 is `_NT_vec` then and `_NT` otherwise (on
        all 883 and 58 of NeuSight's P4 rows)."""
        prefix = spec.arch.kernel_prefix.simt
        sliced = f"_sliced1x{self.k_slices}" if self.k_slices > 1 else ""
        tail = f"_{layout}" if layout else ""
        if self.style == "sgemm_nt":
            return f"sgemm_{self.bm}x{self.bn}x{self.bk_simt}_NT{'_vec' if vector_rows else ''}"
        if self.style == "xmma_ffma":
            return f"sm80_xmma_gemm_f32f32_f32f32_f32{tail}_n_tilesize{self.bm}x{self.bn}x{self.bk_simt}_stage3_ffma"
        if self.style == "scudnn":
            return f"cudnn_infer_{prefix}_scudnn_{self.bm}x{self.bn}{sliced}_relu_small_nn_v1"
        if self.style == "scudnn_winograd":
            return f"cudnn_infer_{prefix}_scudnn_winograd_{self.bm}x{self.bn}_ldg1_ldg4_relu_tile148t_nt_v1"
        if self.math == "simt":
            return f"{prefix}_sgemm_{self.bm}x{self.bn}{sliced}{tail}"
        instr = spec.arch.tensor_cores[dtype].instruction
        if self.style == "xmma":
            m, (cm, cn) = self.bm * self.b_split, self.cluster
            pair = "_2sm" if self.b_split > 1 else ""
            return (
                f"{spec.arch.kernel_prefix.tensorop}_xmma_gemm_{dtype}_tilesize{m}x{self.bn}x{self.bk(dtype)}"
                f"_cluster{cm}x{cn}x1{pair}{tail}"
            )
        return (
            f"{spec.arch.kernel_prefix.tensorop}_{instr}gemm_{self.bm}x{self.bn}_{self.bk(dtype)}x{self.stages}{tail}"
        )


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
    raster: int = 1,
    split_k_chunk: int = 0,
    split_in_place: bool = True,
) -> TileDescription:
    """A cuBLAS/cuDNN CUDA-core kernel of the legacy (maxwell_/volta_/ampere_sgemm) families."""
    return TileDescription(
        "simt",
        bm,
        bn,
        threads,
        2,
        min_cc,
        max_cc,
        k_slices,
        8,
        uses,
        split_k,
        split_k_chunk,
        split_in_place,
        default,
        style,
        raster=raster,
    )


L, B, W, C, F = USE_LINEAR, USE_BATCHED, USE_WINOGRAD, USE_CONV, USE_FUSED_WINOGRAD


def _sm80_simt(min_cc: int, max_cc: int, raster: int) -> list[TileDescription]:
    """cuBLAS's sm80 CUDA-core GEMMs (recorded on the A100): linear without split-K, sliced1x4 kernels for
    deep K, bmm always 128x128; `raster` is their CTA rasterisation on the tables min_cc..max_cc.

    Row raster (1) on sm80-87: the A100's deep-K vocabulary rows (K = 32-65k, 30-50k outputs) run 1.1-1.3x
    slower than their math, as a plain raster's re-read strips make them (docs/accuracy.md). Swizzled (8,
    CUTLASS's default Identity8, which cuBLASLt's CUTLASS-built FP32 kernels on newer GPUs carry; cuBLASLt's
    CUBLASLT_MATMUL_ALGO_CONFIG_CTA_SWIZZLING) on sm89+: a public
    cuBLASLt FP32 curve on an RTX 4060 Ti (AD106, 288 GB/s, 32 MB L2; AD2605/gemm-zoo benchmarks.md) is flat
    from 2048^3 to 8192^3 (16.2, 17.0, 16.4 TFLOP/s), which a row raster cannot be on so little bandwidth
    (predicted 7.1 at 8192^3; 17.1 swizzled)."""
    rows = (
        dict(bm=128, bn=128, threads=256, uses=USE_LINEAR | USE_BATCHED | USE_WINOGRAD),
        dict(bm=128, bn=64, threads=128, uses=USE_LINEAR | USE_WINOGRAD, default=True),
        dict(bm=128, bn=32, threads=256, uses=USE_LINEAR),
        dict(bm=32, bn=128, threads=256, uses=USE_LINEAR),
        dict(bm=64, bn=64, threads=64, uses=USE_LINEAR | USE_WINOGRAD),
        dict(bm=128, bn=32, threads=256, uses=USE_LINEAR, k_slices=4),
        dict(bm=64, bn=32, threads=256, uses=USE_LINEAR, k_slices=4),
        dict(bm=32, bn=32, threads=128, uses=USE_LINEAR, k_slices=4),
    )
    # split only by the skinny rule (cuBLAS splits 2 of the A100's 1,040 linear rows): priced as cuBLASLt's
    # split-K, partials reduced by a second kernel, so a batch-1 GEMV still beats a split GEMM tile
    return [
        _simt(min_cc=min_cc, max_cc=max_cc, split_k=False, raster=raster, split_in_place=False, **row) for row in rows
    ]


def _hopper_simt() -> list[TileDescription]:
    """cuBLAS's FP32 GEMMs on sm90, as public nsys/profiler traces of FP32 PyTorch models on H100s name them
    (sm80_xmma_gemm_f32f32_f32f32_f32_<layout>_n_tilesize<BM>x<BN>x8_stage3_warpsize<WM>x<WN>x1_ffma_...):
    "tn" (nn.Linear) 32x32 (1x2 warps), 32x64 (1x2), 64x64 (1x4), 128x128 (2x2, the most launched),
    256x64 (2x2), 64x256 (1x4); "nn" (torch.bmm, GEMMs of Winograd transforms) 64x128 (1x4), 256x128
    (4x2). BK 8, three stages, threads = 32 x warps; no sliced-K variant and no recorded split-K factor
    (the skinny split still applies). CTA order swizzled (`raster` 8) as on sm89: unrecorded."""
    tn = ((32, 32, 64), (32, 64, 64), (64, 64, 128), (128, 128, 128), (256, 64, 128), (64, 256, 128))
    nn = ((64, 128, 128), (256, 128, 256))
    defaults = ((128, 128), (256, 128))  # the most launched "tn" and the larger "nn" tile
    return [
        TileDescription(
            "simt",
            bm,
            bn,
            threads,
            3,
            90,
            99,
            uses=uses,
            split_k=False,
            default=(bm, bn) in defaults,
            style="xmma_ffma",
            raster=8,
        )
        for rows, uses in ((tn, USE_LINEAR), (nn, USE_BATCHED | USE_WINOGRAD))
        for bm, bn, threads in rows
    ]


# CUDA-core (FP32) kernels per compute capability, as cuBLAS 12.1 / cuDNN 8.9 launch them: the
# names, threads and uses are those recorded in ../shared/data/measured/neusight (Kernel Name,
# Block x; linear rows are "tn", bmm and Winograd GEMMs "nn"). cuBLAS launches only these for
# each use; among them the library's heuristic picks (modelled as the fastest predicted), with
# split-K where the row allows it (sm60-75; sm80+ uses in-CTA sliced-K kernels instead). The
# library's default kernel for a use (`default`) is kept unless another is predicted clearly faster
# (engine.PREFERENCE_MARGIN): heuristics are conservative, and the recorded names show it.
_SIMT = [
    # sm60 (P100): linear 32x128 / 64x64 (split-K), bmm 128x64, Winograd GEMM 32x128 / 64x64.
    _simt(32, 128, 256, 60, 60, L | W, default=True),
    _simt(64, 64, 64, 60, 60, L | W),
    _simt(128, 64, 128, 60, 60, B),
    # sm61 (P4, GP102): linear sgemm_128x128x8 (grid = tiles, never split) and, on GEMMs of few output tiles
    # (33 of the P4's 974 linear rows: 512-768 rows x 768-1536 outputs), maxwell_sgemm_128x64 / 128x128
    # with split-K in fixed 512-deep slices (grid z = ceil(K / 512) on all 33, z = 2 to 128); bmm 128x64 /
    # 128x128 (grid z = batch).
    _simt(128, 128, 256, 61, 61, L, split_k=False, style="sgemm_nt"),
    _simt(128, 64, 128, 61, 61, L, split_k_chunk=512),
    _simt(128, 128, 256, 61, 61, L, split_k_chunk=512),
    _simt(128, 64, 128, 61, 61, B, default=True),
    _simt(128, 128, 256, 61, 61, B),
    _simt(64, 64, 64, 61, 61, W),
    _simt(32, 128, 256, 61, 61, W),
    # sm70 (V100): the full cuBLAS SIMT set for linear, incl. sliced1x4; bmm 32x128 / 64x64.
    _simt(128, 128, 256, 70, 70, L, default=True),
    _simt(128, 64, 128, 70, 70, L),
    _simt(128, 32, 256, 70, 70, L | W),
    _simt(32, 128, 256, 70, 70, L | B | W),
    _simt(64, 64, 64, 70, 70, B | W),
    _simt(128, 32, 256, 70, 70, L, k_slices=4),
    _simt(64, 32, 256, 70, 70, L, k_slices=4),
    # sm75 (T4): linear 128x128 / 128x64 / 64x64 (split-K); bmm and Winograd 128x64 / 128x32 / 64x64.
    _simt(128, 128, 256, 75, 75, L, default=True),
    _simt(128, 64, 128, 75, 75, L | B | W, default=True),
    _simt(64, 64, 64, 75, 75, L | B | W),
    _simt(128, 32, 256, 75, 75, B | W),
    # sm80+: the A100's recorded set, row-rastered on sm80-87 and swizzled on sm89 and sm100+
    *_sm80_simt(80, 87, raster=1),
    *_sm80_simt(89, 89, raster=8),
    # sm90 (H100): cuBLAS's xmma FFMA kernels (sm80_xmma_gemm_f32f32_f32f32_f32_{tn,nn}_n_tilesize..._ffma),
    # the only FP32 GEMMs public H100 profiles of nn.Linear show, not the A100's ampere_sgemm set.
    *_hopper_simt(),
    *_sm80_simt(100, OPEN_CC, raster=8),
    # cuDNN implicit-GEMM (scudnn_128xN, M = N*P*Q, N = out channels) and fused Winograd kernels, all CCs.
    _simt(128, 128, 256, 60, OPEN_CC, C, style="scudnn"),
    _simt(128, 64, 128, 60, OPEN_CC, C, style="scudnn"),
    _simt(128, 32, 64, 60, OPEN_CC, C, style="scudnn"),
    _simt(128, 128, 256, 60, OPEN_CC, F, style="scudnn_winograd"),
]
del L, B, W, C, F


def _hopper(bm: int, bn: int, stages: int, cluster: tuple[int, int]) -> TileDescription:
    # warp-specialized: one producer warp group (TMA) plus one consumer warp group per 64 rows, at most 2
    threads = 128 * (1 + min(2, bm // 64))
    return TileDescription(
        "tensorop", bm, bn, threads, stages, 90, 99, style="xmma", k_bytes=128, cluster=cluster, persistent=True
    )


def _blackwell(bm: int, bn: int, stages: int, cluster: tuple[int, int], b_split: int = 1) -> TileDescription:
    # one TMA warp, one MMA warp and four epilogue warps (+2), accumulators in tensor memory
    return TileDescription(
        "tensorop",
        bm,
        bn,
        256,
        stages,
        100,
        OPEN_CC,
        style="xmma",
        k_bytes=128,
        cluster=cluster,
        b_split=b_split,
        tmem_accumulators=True,
        persistent=True,
    )


# Tensor-core tiles per architecture, from CUTLASS's kernel generator (NVIDIA/cutlass
# python/cutlass_library/generator.py), the tile shapes cuBLAS's own kernel names also show:
_TENSOR = [
    # sm70/sm75 (mma.sync m8n8k4 / m16n8k8, 2 stages): GenerateSM70_TensorOp_884 / GenerateSM75_TensorOp_1688
    # tile lists (256x128, 128x256, 128x128, 128x64, 64x128, 64x64 at K = 32 fp16).
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
    # sm80-sm89 (mma.sync m16n8k16, multistage cp.async): GenerateSM80_TensorOp_16816's K = 32 tiles, which
    # the generator writes with max_cc = 1024, so sm86/sm87/sm89 run them too (their 64-deep twins carry
    # max_cc_smem_limited = 80: they need more than sm86/89's 100 KB of shared memory); sm89's FP8 tiles
    # (GenerateSM89_TensorOp_16832_fp8) have the same shapes at K = 64 fp8.
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
    # sm90 (Hopper, wgmma.mma_async m64nNk16, TMA, warp-specialized): GenerateSM90_TensorOp_16b_WGMMA_gemm's
    # tiles for the 64x64x16 and 64x128x16 instructions with their cluster shapes (small 64x64x64 1x1 and
    # 64x128x64 1x1 / 2x1, medium 128x128x64 2x1 / 1x2, large 256x128x64 and 128x256x64 2x1 / 1x2),
    # K = 128 bytes (64 fp16, 32 tf32, 128 fp8). Stages fill the 227 KB of shared memory as CUTLASS's
    # StageCountAutoCarveout does (less a ~32 KB epilogue), so every tile runs one CTA per SM.
    _hopper(64, 64, 12, (1, 1)),
    _hopper(64, 128, 8, (1, 1)),
    _hopper(64, 128, 8, (2, 1)),
    _hopper(128, 128, 6, (2, 1)),
    _hopper(128, 128, 6, (1, 2)),
    _hopper(256, 128, 4, (2, 1)),
    _hopper(256, 128, 4, (1, 2)),
    _hopper(128, 256, 4, (2, 1)),
    _hopper(128, 256, 4, (1, 2)),
    # sm100 (Blackwell, tcgen05.mma, accumulators in tensor memory): GenerateSM100_TensorOp_16b_UMMA_gemm's
    # 1-SM MMA tiles (tcgen05 M = 64 or 128, N up to 256: 64x64, 64x128, 128x64, 128x128, 128x256; clusters
    # 1x1, 2x1) and 2-SM MMA tiles 256x128 / 256x256 (a CTA pair on a 2x1 cluster, each CTA 128 rows and
    # half of B), K = 128 bytes; stages fill 227 KB as on sm90.
    _blackwell(64, 64, 12, (1, 1)),
    _blackwell(64, 128, 8, (1, 1)),
    _blackwell(128, 64, 8, (1, 1)),
    _blackwell(128, 128, 6, (1, 1)),
    _blackwell(128, 256, 4, (1, 1)),
    _blackwell(128, 128, 6, (2, 1)),
    _blackwell(128, 256, 4, (2, 1)),
    _blackwell(128, 128, 8, (2, 1), b_split=2),
    _blackwell(128, 256, 6, (2, 1), b_split=2),
]

# The kernel tables the catalogue has rows for (compute capability x10): the first table of each row.
KERNEL_TABLES: tuple[int, ...] = tuple(sorted({t.min_cc for t in (*_SIMT, *_TENSOR)}))


@dataclass(frozen=True)
class KernelTable:
    """Which catalogue table a GPU's kernels come from, and why when it is not its own."""

    cc: int  # the table (compute capability x10)
    fallback: str | None  # one line saying which older table stands in for a missing one, else None


@lru_cache(maxsize=256)
def _resolve_table(wanted: int, path: str, compute_capability: str) -> KernelTable:
    if wanted in KERNEL_TABLES:
        return KernelTable(wanted, None)
    older = [t for t in KERNEL_TABLES if t <= wanted]
    if not older:
        raise SpecError(
            f"{path}: compute capability {compute_capability}: kernel_table {wanted} is older than every "
            f"kernel table gpusim has ({', '.join(map(str, KERNEL_TABLES))})"
        )
    return KernelTable(
        older[-1],
        f"{Path(path).name}: no tuned kernel table for sm_{wanted} (compute capability {compute_capability}); "
        f"using sm_{older[-1]}'s, the nearest older one",
    )


def kernel_table(spec: GpuSpec) -> KernelTable:
    """The catalogue table spec's kernels come from: the one its compute capability names
    (spec.arch.kernel_table), else the nearest older one, with a fallback line saying so."""
    return _resolve_table(spec.arch.kernel_table, spec.path, spec.device.compute_capability)


def _row(t: TileDescription, staged: str, tensor: bool) -> dict[str, int]:
    """One row of the engine's tile table, by column name (gpusim.engine.TILE_COLUMNS)."""
    return {
        "bm": t.bm,
        "bn": t.bn,
        "bk": t.bk(staged),
        "threads": t.threads,
        "regs": t.registers(),
        "smem": t.shared_memory(staged),
        "k_slices": t.k_slices,
        "tensor": int(tensor),
        "uses": t.uses,
        "split_k": int(t.split_k),
        "split_chunk": t.split_k_chunk,
        "split_in_place": int(t.split_in_place),
        "default": int(t.default),
        "cluster_m": t.cluster[0],
        "cluster_n": t.cluster[1],
        "operand_rows": t.operand_rows(),
        "persistent": int(t.persistent),
        "raster": t.raster,
    }


@lru_cache(maxsize=256)
def _tile_table(cc: int, tensor: bool, dtype: str) -> tuple[tuple[TileDescription, ...], np.ndarray]:
    pool = _TENSOR if tensor else _SIMT
    tiles = tuple(t for t in pool if t.min_cc <= cc <= t.max_cc)
    staged = dtype if tensor else "fp32"  # CUDA-core kernels stage operands as fp32
    rows = [_row(t, staged, tensor) for t in tiles]
    table = np.array([[r[c] for c in TILE_COLUMNS] for r in rows], dtype=np.int64)
    return tiles, table.reshape(len(tiles), len(TILE_COLUMNS))


def gemm_tiles(spec: GpuSpec, dtype: str) -> tuple[tuple[TileDescription, ...], np.ndarray]:
    """The GEMM kernels available for dtype on spec, and their int64 table (gpusim.engine.TILE_COLUMNS).

    Never empty: a table with no rows for the math unit is a one-line SpecError naming the spec file,
    so the compiled engine never indexes an empty table."""
    table = kernel_table(spec)
    tensor = spec.uses_tensor_cores(dtype)
    tiles, array = _tile_table(table.cc, tensor, dtype)
    if not tiles:
        unit = "tensor-core" if tensor else "CUDA-core"
        raise SpecError(f"{spec.path}: kernel table sm_{table.cc} has no {unit} GEMM kernels for {dtype}")
    return tiles, array
