"""The Numba core: occupancy, waves and time for many kernel launches in one call.

Every function here is plain Python under `NUMBA_DISABLE_JIT=1`, which is how
benchmarks/engine.py runs the identical model without the compiler.

Model (docs/architecture.md): a grid of G CTAs with B resident per SM on S SMs runs in
ceil(G / (S*B)) waves. A wave with b CTAs on each of `active` SMs takes
max(b * CTA FLOPs / SM rate, b * CTA bytes / per-SM bandwidth), where the SM's rate is shared
by its resident CTAs and per-SM bandwidth rises when few SMs share it: a partial last wave (the
tail) costs a whole wave where one CTA fills an SM, less where a full wave holds several, never
nothing.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from gpusim.calibration import CONSTANT_NAMES
from gpusim.occupancy import LIMIT_GRID_YZ, blocks_per_sm

# What a kernel is launched for (bit mask): the library's kernel lists differ per use.
USE_LINEAR = 1  # cuBLAS GEMM as nn.Linear calls it (cuBLAS "tn"), split-K allowed where the row says so
USE_BATCHED = 2  # cuBLAS strided-batched GEMM (torch.bmm, cuBLAS "nn"); grid z = batch (capped), split only when skinny
USE_WINOGRAD = 4  # the batched GEMM inside cuDNN's non-fused Winograd (36 GEMMs, grid z = 36)
USE_CONV = 8  # cuDNN implicit-GEMM convolution kernels (scudnn_*)
USE_FUSED_WINOGRAD = 16  # cuDNN fused Winograd kernels (scudnn_winograd_*)
USE_ANY = 31

# Columns of the int64 tile table (one row per kernel; built by gpusim.kernels.gemm_tiles).
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
    "split_chunk",  # K per split slice where the library fixes it (grid z = ceil(K / chunk)); 0: chosen
    "split_in_place",  # 1: split-K slices accumulate into C in the kernel; 0: a second kernel reduces them
    "default",
    "cluster_m",  # CTAs of a thread-block cluster along the grid's x (M tiles)
    "cluster_n",  # ... and y (N tiles)
    "operand_rows",  # operand rows a CTA loads per K step (BM + BN, or BM + BN/2 for a 2-SM MMA)
    "persistent",  # 1: a persistent tile scheduler launches at most one wave of CTAs that loop over the tiles
    "raster",  # CTA rasterisation: N tiles (grid y) a run of consecutive CTAs covers per M tile (1: row raster)
)
(
    T_BM,
    T_BN,
    T_BK,
    T_THREADS,
    T_REGS,
    T_SMEM,
    T_SLICES,
    T_TENSOR,
    T_USES,
    T_SPLIT,
    T_SPLIT_CHUNK,
    T_SPLIT_IN_PLACE,
    T_DEFAULT,
    T_CLUSTER_M,
    T_CLUSTER_N,
    T_OPERAND_ROWS,
    T_PERSISTENT,
    T_RASTER,
) = (TILE_COLUMNS.index(c) for c in TILE_COLUMNS)
# Columns of the float64 per-GPU vector (built by gpusim.predict.device_vector with these names).
DEVICE_COLUMNS: tuple[str, ...] = (
    "sms",  # streaming multiprocessors
    "simt_rate",  # CUDA-core FLOP/us at the sustained clock
    "tensor_rate",  # tensor-core FLOP/us for the dtype (0 without tensor cores)
    "dram_bw",  # peak DRAM bytes/us
    "l2_bytes",  # L2 size
    "issue",  # FP32 issue ratio (GpuSpec.fp32_issue_ratio)
    "activations_per_us",  # DRAM rows the GPU can activate per us (GpuSpec.row_activations_per_us; 0: not modelled)
    "page_bytes",  # bytes of one DRAM row of a channel
)
D_SMS, D_SIMT_RATE, D_TENSOR_RATE, D_DRAM_BW, D_L2_BYTES, D_ISSUE, D_ACTIVATIONS, D_PAGE_BYTES = (
    DEVICE_COLUMNS.index(c) for c in DEVICE_COLUMNS
)


def device_array(**values: float) -> np.ndarray:
    """The per-GPU vector from named values (every DEVICE_COLUMNS name, no other)."""
    if set(values) != set(DEVICE_COLUMNS):
        raise ValueError(f"device vector needs exactly {', '.join(DEVICE_COLUMNS)}; got {', '.join(values)}")
    return np.array([float(values[c]) for c in DEVICE_COLUMNS], dtype=np.float64)


# cuBLAS (sm80+, FP32) launches a sliced1x4 kernel for nn.Linear when K exceeds this many times the
# count of 128x128 output tiles, and a plain one otherwise: the rule holds on 86% of the recorded
# A100 rows (sliced share by K / tiles: 0% up to 2, 12-34% at 4-32, 40% at 32-64, 68% at 64-128,
# 87% beyond); a fastest-kernel choice picked the plain 128x64 for most deep-K rows. It applies to
# every kernel table whose linear kernels include sliced ones that never split K (read off the table).
SLICED_K_GATE = 32.0


class GemmLaunches(NamedTuple):
    """Per GEMM: the chosen kernel (row of the tile table), split-K factor, and its launch."""

    tile: np.ndarray
    split: np.ndarray
    grid: np.ndarray
    ctas_per_sm: np.ndarray
    limiter: np.ndarray
    waves: np.ndarray
    tail: np.ndarray
    time_us: np.ndarray


class StreamLaunches(NamedTuple):
    """Per memory-bound kernel: its launch."""

    grid: np.ndarray
    ctas_per_sm: np.ndarray
    limiter: np.ndarray
    waves: np.ndarray
    tail: np.ndarray
    time_us: np.ndarray


# Indices into the constants vector (gpusim.calibration.CONSTANT_NAMES order), by name.
(C_OVERHEAD, C_SIMT_EFF, C_TENSOR_EFF, C_TILE_HALF, C_DRAM_EFF, C_SM_BW_CAP, C_WAVE_LATENCY) = (
    CONSTANT_NAMES.index(n)
    for n in (
        "launch_overhead_us",
        "simt_efficiency",
        "tensor_efficiency",
        "tile_intensity_half",
        "dram_efficiency",
        "sm_bandwidth_cap",
        "wave_latency_us",
    )
)
C_TENSOR_DRAM = CONSTANT_NAMES.index("tensor_dram_efficiency")
# Per-CTA fixed work of cuDNN's fused Winograd kernels, in input-channel equivalents of its main loop.
C_FUSED_FIXED = CONSTANT_NAMES.index("winograd_fused_fixed_channels")
# The operand-strip traffic of deep-K linear GEMMs (operand_strip_time).
C_STRIDED_DRAM, C_DRIFT, C_DRIFT_WAVES, C_MISS_SHARPNESS = (
    CONSTANT_NAMES.index(n)
    for n in ("strided_dram_efficiency", "cta_drift_fraction", "drift_waves", "l2_miss_sharpness")
)
# Split-K factors the GEMM selection considers.
SPLIT_OPTIONS = np.array([1, 2, 3, 4, 5, 6, 8, 12, 16, 24, 32, 48, 64], dtype=np.int64)
# Factors above this only for skinny GEMMs (SKINNY_SPLIT_FILL), whose few tiles need them to fill the SMs: a
# 16-output, 2-row FP16 GEMM of K = 524,288 is 1 tile, so split 16 left 92 of the A100's 108 SMs idle.
SPLIT_MAX_FILLED = 16
# A kernel that is not the library's default for its use, or a split-K launch, is chosen only when
# predicted faster than the default by this fraction (cuBLAS heuristics keep their default kernel).
PREFERENCE_MARGIN = 0.10
# Split-K for any linear kernel when its output tiles fill at most 1/SKINNY_SPLIT_FILL of the SMs and K
# is at least SKINNY_SPLIT_MIN_K (the skinny, very deep GEMMs the recorded kernel lists never cover).
SKINNY_SPLIT_FILL = 4
SKINNY_SPLIT_MIN_K = 512
SKINNY_SPLIT_USES = USE_LINEAR | USE_BATCHED  # the cuBLAS GEMMs that get it (cuDNN's convs are priced as they run)


@njit(cache=True)
def output_tiles(m: int, n: int, batch: int, bm: int, bn: int, cluster_m: int, cluster_n: int, max_grid_z: int) -> int:
    """CTAs of one K slice of a GEMM launch: its BM x BN output tiles along x (M) and y (N), each rounded up to
    whole clusters (a 2x1 cluster makes x even), times grid z = the batch, at most `max_grid_z` (past it each z
    CTA loops over several batch entries: a 65,536-batch bmm of 2 tiles launches 2 x 65,535 CTAs, as
    NeuSight's A100 rows record)."""
    gx = ((m + bm - 1) // bm + cluster_m - 1) // cluster_m * cluster_m
    gy = ((n + bn - 1) // bn + cluster_n - 1) // cluster_n * cluster_n
    return gx * gy * min(batch, max_grid_z)


@njit(cache=True)
def _wave_time(
    b: int,
    active: int,
    cta_flops: float,
    cta_bytes: float,
    flop_rate_sm: float,
    bandwidth: float,
    sms: int,
    consts: np.ndarray,
) -> float:
    """Time of one wave with b CTAs on each of `active` SMs. The SM's rate is shared by its CTAs, so a lone
    CTA runs at the whole rate: a latency-hiding factor in the resident warps was fitted below one warp (no
    effect) and, held off, left leave-one-GPU-out no worse (docs/accuracy.md, "Does every fitted term earn
    its place?")."""
    compute = b * cta_flops / flop_rate_sm
    per_sm_bw = min(bandwidth / active, consts[C_SM_BW_CAP] * bandwidth / sms)
    return max(compute, b * cta_bytes / per_sm_bw) + consts[C_WAVE_LATENCY]


@njit(cache=True)
def resident_waves(
    grid: int,
    b: int,
    cta_flops: float,
    cta_bytes: float,
    flop_rate_sm: float,
    bandwidth: float,
    sms: int,
    consts: np.ndarray,
) -> tuple[int, float, float]:
    """(waves, tail fill, busy time in us) of `grid` CTAs with b resident per SM (b >= 1)."""
    capacity = sms * b
    waves = (grid + capacity - 1) // capacity
    full = grid // capacity
    rem = grid - full * capacity
    t = 0.0
    if full > 0:
        t = full * _wave_time(b, sms, cta_flops, cta_bytes, flop_rate_sm, bandwidth, sms, consts)
    tail = 1.0
    if rem > 0:
        b_tail = (rem + sms - 1) // sms
        t += _wave_time(b_tail, min(rem, sms), cta_flops, cta_bytes, flop_rate_sm, bandwidth, sms, consts)
        tail = rem / capacity
    return waves, tail, t


@njit(cache=True)
def launch_waves(
    grid: int,
    threads: int,
    regs: int,
    smem: int,
    cta_flops: float,
    cta_bytes: float,
    flop_rate_sm: float,
    bandwidth: float,
    limits: np.ndarray,
    sms: int,
    consts: np.ndarray,
) -> tuple[int, int, int, float, float]:
    """(CTAs per SM, limiter, waves, tail fill, busy time in us) of one launch; time is inf if it cannot run."""
    b, limiter = blocks_per_sm(limits, threads, regs, smem)
    if b == 0:
        return 0, limiter, 0, 0.0, np.inf
    waves, tail, t = resident_waves(grid, b, cta_flops, cta_bytes, flop_rate_sm, bandwidth, sms, consts)
    return b, limiter, waves, tail, t


@njit(cache=True)
def ffma_share(bm: int, bn: int, k_slices: int, threads: int) -> float:
    """Share of FFMA in a CUDA-core GEMM kernel's instruction stream, per K step of one thread: its
    F = BM*BN*slices/threads FFMA, the 128-bit shared-memory loads of its sqrt(F) x sqrt(F) A and B
    fragments (sqrt(F)/2), the global-to-shared staging of the CTA's (BM+BN) x 8 tile per 8 steps
    (128-bit loads and stores plus a barrier) and one loop instruction."""
    f = bm * bn * k_slices / threads
    staging = (bm + bn) * k_slices / (2.0 * threads) + 1.0 / 8.0
    return f / (f + math.sqrt(f) / 2.0 + staging + 1.0)


@njit(cache=True)
def operand_strip_time(
    m: int,
    n: int,
    k: int,
    bm: int,
    bn: int,
    split: int,
    grid: int,
    capacity: int,
    raster: int,
    elem_bytes: int,
    device: np.ndarray,
    consts: np.ndarray,
) -> float:
    """DRAM time (us) of the operand strips of a linear ("tn") GEMM launch: both operands are read
    along K in 32-byte sectors from rows K x elem_bytes apart.

    A wave reads its CTAs' distinct strips once; later waves read them again from DRAM as far as they
    do not stay in L2 (the miss curve below in their size over the L2 size: on GPUs with a large L2 the
    re-reads of weights that fit are L2 hits). CTAs of one wave that share a strip reuse it through L2
    only while they stay close along K;
    they drift apart as the launch goes on, so the footprint that must stay in L2 is a fraction
    of the wave's strips, growing over the first waves. The share of traffic beyond one read per
    wave that misses L2 rises with that footprint over the L2 size; misses are read at the
    strided DRAM efficiency. (An extra share for rows that are not 16-byte aligned, fitted 0.17, was
    dropped on 2026-12-04: held off, leave-one-GPU-out linear MAPE fell on every GPU.)
    """
    ks = (k + split - 1) // split  # K of one split slice
    conc = min(grid, capacity)  # CTAs resident in one wave
    waves = (grid + capacity - 1) // capacity
    no_reuse = grid * (bm + bn) * ks * float(elem_bytes)  # every CTA reads its own two strips
    # distinct strips of one wave: consecutive CTAs walk `raster` N tiles per M tile, then the next M tile;
    # a wave covers whole bands of gx x raster tiles and the strips they read, or part of one band
    gx = (m + bm - 1) // bm
    w = min(raster, (n + bn - 1) // bn)
    c = min(conc, grid // split)
    band = gx * w
    strips_m, strips_n = (gx, w * ((c + band - 1) // band)) if c >= band else ((c + w - 1) // w, min(w, c))
    wave_strips = (min(m, strips_m * bm) + min(n, strips_n * bn)) * ks * float(elem_bytes)
    # later waves re-read those strips from DRAM only as far as they do not stay in L2 (same miss curve)
    reread_miss = 1.0 / (1.0 + (device[D_L2_BYTES] / max(wave_strips, 1.0)) ** consts[C_MISS_SHARPNESS])
    per_wave = wave_strips * (1.0 + (waves - 1) * reread_miss)
    footprint = consts[C_DRIFT] * conc * (bm + bn) * ks * elem_bytes * (1.0 - math.exp(-waves / consts[C_DRIFT_WAVES]))
    miss = 1.0 / (1.0 + (device[D_L2_BYTES] / max(footprint, 1.0)) ** consts[C_MISS_SHARPNESS])
    traffic = per_wave + miss * max(no_reuse - per_wave, 0.0)
    return traffic / (device[D_DRAM_BW] * consts[C_STRIDED_DRAM])


@njit(cache=True)
def row_activation_time(rows: int, k: int, visit_bytes: int, elem_bytes: int, device: np.ndarray) -> float:
    """Least time (us) to read `rows` operand rows of K elements stored contiguous along K, one K step
    (`visit_bytes`) per row visit, when every visit must open its DRAM row (page) anew: thousands of rows
    are in flight (a CTA visits BM or BN of them per step), so a page is closed before the next step returns
    to it. Rows shorter than a page share it (consecutive rows are adjacent), so one activation serves
    page / row bytes visits. 0 where the GPU's activation rate is not modelled (hw_specs/memory_types.yaml)."""
    rate = device[D_ACTIVATIONS]
    if rate <= 0.0 or rows <= 0:
        return 0.0
    row_bytes = float(k * elem_bytes)
    visits = rows * math.ceil(row_bytes / visit_bytes)
    return visits / max(1.0, device[D_PAGE_BYTES] / row_bytes) / rate


def gemm_select(
    m: np.ndarray,
    n: np.ndarray,
    k: np.ndarray,
    batch: np.ndarray,
    dram_bytes: np.ndarray,
    rate_scale: np.ndarray,
    elem_bytes: int,
    tiles: np.ndarray,
    limits: np.ndarray,
    device: np.ndarray,
    consts: np.ndarray,
    allow_split: bool,
    use: np.ndarray | None = None,
    k_major_rows: np.ndarray | None = None,
    launched_as: tuple[np.ndarray, np.ndarray] | None = None,
) -> GemmLaunches:
    """For each GEMM (M, N, K, batch), pick the fastest of the kernels the library launches for its
    use (gpusim.kernels USE_* bit per GEMM; default: USE_LINEAR) and split-K, and return its launch.

    rate_scale multiplies the math rate per GEMM (algorithm efficiency, e.g. fused Winograd).
    k_major_rows: per GEMM, the operand rows (per batch entry) stored contiguous along K, which a CUDA-core
    kernel reads one K step per row visit (row_activation_time; default: none).
    launched_as: per GEMM, a (tile-table row, split-K factor) to price instead of choosing, where the row
    is >= 0 (a recorded launch: validation.selection); the library's gates are not applied to it.

    The tile table and device vector must have the engine's layouts (TILE_COLUMNS, DEVICE_COLUMNS)
    and at least one row: checked here, since the compiled loop does not check bounds.
    """
    if use is None:
        use = np.full(m.shape[0], USE_LINEAR, np.int64)
    if k_major_rows is None:
        k_major_rows = np.zeros(m.shape[0], np.int64)
    forced_tile, forced_split = launched_as if launched_as is not None else (np.full(m.shape[0], -1), m * 0)
    _check_layouts(tiles, device)
    given = np.asarray(forced_tile) >= 0
    if np.any(np.asarray(forced_tile)[given] >= tiles.shape[0]) or np.any(np.asarray(forced_split)[given] < 1):
        raise ValueError("launched_as needs a row of the tile table and a split-K factor >= 1 for each GEMM it prices")
    return GemmLaunches(
        *_gemm_select(
            m,
            n,
            k,
            batch,
            dram_bytes,
            rate_scale,
            elem_bytes,
            tiles,
            limits,
            device,
            consts,
            allow_split,
            use,
            k_major_rows,
            np.asarray(forced_tile, np.int64),
            np.asarray(forced_split, np.int64),
        )
    )


def _check_layouts(tiles: np.ndarray | None, device: np.ndarray) -> None:
    """Guard the compiled code's indexing at the Python boundary."""
    if tiles is not None and (tiles.ndim != 2 or tiles.shape[0] == 0 or tiles.shape[1] != len(TILE_COLUMNS)):
        raise ValueError(f"tile table must be a non-empty (kernels, {len(TILE_COLUMNS)}) array, got {tiles.shape}")
    if device.shape != (len(DEVICE_COLUMNS),):
        raise ValueError(
            f"device vector must have {len(DEVICE_COLUMNS)} entries ({DEVICE_COLUMNS}), got {device.shape}"
        )


@njit(cache=True)
def _launch_arrays(count: int):
    """Zeroed per-launch outputs: grid, CTAs per SM, limiter, waves, tail fill, time (us)."""
    return (
        np.zeros(count, np.int64),
        np.zeros(count, np.int64),
        np.zeros(count, np.int64),
        np.zeros(count, np.int64),
        np.zeros(count, np.float64),
        np.zeros(count, np.float64),
    )


@njit(cache=True)
def _gemm_select(
    m: np.ndarray,
    n: np.ndarray,
    k: np.ndarray,
    batch: np.ndarray,
    dram_bytes: np.ndarray,
    rate_scale: np.ndarray,
    elem_bytes: int,
    tiles: np.ndarray,
    limits: np.ndarray,
    device: np.ndarray,
    consts: np.ndarray,
    allow_split: bool,
    use: np.ndarray,
    k_major_rows: np.ndarray,
    forced_tile: np.ndarray,
    forced_split: np.ndarray,
):
    """gemm_select's compiled loop."""
    count = m.shape[0]
    out_tile = np.zeros(count, np.int64)
    out_split = np.ones(count, np.int64)
    out_grid, out_b, out_lim, out_waves, out_tail, out_time = _launch_arrays(count)
    out_time[:] = np.inf
    best_score = np.full(count, np.inf)
    sms = int(device[D_SMS])
    dram_bw = device[D_DRAM_BW] * consts[C_DRAM_EFF]
    overhead = consts[C_OVERHEAD]
    tile_b = np.zeros(tiles.shape[0], np.int64)
    tile_lim = np.zeros(tiles.shape[0], np.int64)
    tile_rate = np.zeros(tiles.shape[0])  # math rate of one SM running the kernel, before the tile factor
    # cuBLAS on sm80+ never splits K for nn.Linear; it launches its in-CTA sliced-K kernels exactly
    # for deep-K problems (gpusim.kernels.SLICED_K_GATE), so there the choice is among those only
    sliced_arch = False
    for j in range(tiles.shape[0]):  # all of these depend on the kernel only
        tile_b[j], tile_lim[j] = blocks_per_sm(limits, tiles[j, T_THREADS], tiles[j, T_REGS], tiles[j, T_SMEM])
        if tiles[j, T_TENSOR]:
            tile_rate[j] = device[D_TENSOR_RATE] * consts[C_TENSOR_EFF] / sms
        else:  # on single-issue 128-lane SMs the other instructions take FFMA issue slots
            issue = min(
                1.0,
                ffma_share(tiles[j, T_BM], tiles[j, T_BN], tiles[j, T_SLICES], tiles[j, T_THREADS]) * device[D_ISSUE],
            )
            tile_rate[j] = device[D_SIMT_RATE] * consts[C_SIMT_EFF] * issue / sms
        if tiles[j, T_SLICES] > 1 and tiles[j, T_SPLIT] == 0 and tiles[j, T_USES] & USE_LINEAR:
            sliced_arch = True
    tensor_bw = device[D_DRAM_BW] * consts[C_TENSOR_DRAM]  # multistage tensor-core kernels stream closer to peak
    for i in range(count):
        simt_floor_us = dram_bytes[i] / dram_bw
        tensor_floor_us = dram_bytes[i] / tensor_bw
        deep = (
            sliced_arch
            and use[i] == USE_LINEAR
            and k[i] > SLICED_K_GATE * ((m[i] + 127) // 128) * ((n[i] + 127) // 128)
        )
        forced = forced_tile[i] >= 0
        for j in range(tiles.shape[0]):
            bm, bn, bk = tiles[j, T_BM], tiles[j, T_BN], tiles[j, T_BK]
            slices, tensor, b, lim = tiles[j, T_SLICES], tiles[j, T_TENSOR], tile_b[j], tile_lim[j]
            if b == 0 or (tiles[j, T_USES] & use[i]) == 0 or (forced and j != forced_tile[i]):
                continue
            if not forced and sliced_arch and use[i] == USE_LINEAR and tensor == 0 and (slices > 1) != deep:
                continue
            # a cluster launch rounds the grid up to whole clusters, and the CTAs of a cluster are
            # co-scheduled: a wave holds whole clusters only, so the SMs it can fill round down to a
            # multiple of the cluster size (GPC boundaries are not in the spec files)
            cm, cn = tiles[j, T_CLUSTER_M], tiles[j, T_CLUSTER_N]
            tiles_mn = output_tiles(m[i], n[i], batch[i], bm, bn, cm, cn, limits[LIMIT_GRID_YZ])
            grid_z = min(batch[i], limits[LIMIT_GRID_YZ])  # each z CTA covers batch / grid_z entries
            wave_sms = sms - sms % (cm * cn)
            # a kernel the library never splits still gets split-K where its tiles alone would leave
            # most SMs idle on a deep K (SKINNY_SPLIT_FILL): every cuBLAS version has a split-K or
            # stream-K path for such shapes, and no library runs a K = 500,000 GEMM as 4 CTAs
            # (torch.bmm's strided-batched GEMM too: cuBLASLt splits K of batched GEMMs, and a batch-1 bmm is
            # one GEMM; priced as its tiles alone, a 256x256x500,000 bmm was 21x slower than the same nn.Linear)
            skinny = tiles_mn * SKINNY_SPLIT_FILL <= sms and k[i] >= SKINNY_SPLIT_MIN_K
            can_split = allow_split and (
                (tiles[j, T_SPLIT] == 1 and use[i] == USE_LINEAR) or (skinny and (use[i] & SKINNY_SPLIT_USES) != 0)
            )
            floor_us = tensor_floor_us
            if tensor == 0:  # CUDA-core kernels also wait for the DRAM rows their K-major operands open
                floor_us = max(
                    simt_floor_us,
                    row_activation_time(k_major_rows[i] * batch[i], k[i], bk * slices * elem_bytes, elem_bytes, device),
                )
            intensity = 2.0 * bm * bn / tiles[j, T_OPERAND_ROWS]
            rate_sm = rate_scale[i] * tile_rate[j] * intensity / (intensity + consts[C_TILE_HALF])
            # a fixed slice depth (the library's own) makes one split launch, not a choice among factors
            chunk = tiles[j, T_SPLIT_CHUNK]
            for option in range(1 if chunk > 0 or forced else SPLIT_OPTIONS.shape[0]):
                s = (k[i] + chunk - 1) // chunk if chunk > 0 else SPLIT_OPTIONS[option]
                if forced:
                    s = forced_split[i]
                elif chunk > 0 and (s < 2 or not allow_split):
                    break
                elif (
                    chunk == 0
                    and s > 1
                    and (
                        not can_split
                        or tiles_mn > 2 * sms
                        or k[i] < s * bk * slices * 4
                        or (s > SPLIT_MAX_FILLED and not skinny)
                    )
                ):
                    break
                k_iters = ((k[i] + s - 1) // s + bk - 1) // bk
                k_work = k_iters * bk
                if use[i] == USE_FUSED_WINOGRAD:  # in-kernel output transform and prologue: fixed per CTA
                    k_work += consts[C_FUSED_FIXED]
                cta_flops = 2.0 * bm * bn * k_work * batch[i] / grid_z
                grid = tiles_mn * s
                # the tiles' operand traffic is served by L2 and not priced (docs/architecture.md): DRAM
                # enters as the compulsory-traffic floor and, for linear GEMMs, the operand strips
                waves, tail, busy = resident_waves(grid, b, cta_flops, 0.0, rate_sm, dram_bw, wave_sms, consts)
                t = max(busy, floor_us) + overhead
                if s > 1 and tiles[j, T_SPLIT_IN_PLACE]:  # each slice after the first reads and writes C
                    t += 2.0 * 4.0 * (s - 1) * m[i] * n[i] * batch[i] / dram_bw
                elif s > 1:  # partial sums in fp32 written, read back and reduced by a second kernel
                    t += 2.0 * 4.0 * s * m[i] * n[i] * batch[i] / dram_bw + overhead
                score = t
                if (tiles[j, T_DEFAULT] == 0 and tensor == 0) or s > 1:
                    score = t * (1.0 + PREFERENCE_MARGIN)
                if score < best_score[i]:
                    best_score[i] = score
                    # a persistent kernel's grid is one wave of CTAs; its time is the same tile waves
                    launched = min(grid, wave_sms * b) if tiles[j, T_PERSISTENT] else grid
                    out_tile[i], out_split[i], out_grid[i], out_b[i] = j, s, launched, b
                    out_lim[i], out_waves[i], out_tail[i], out_time[i] = lim, waves, tail, t
        j = out_tile[i]
        if use[i] == USE_LINEAR and tiles[j, T_TENSOR] == 0 and out_b[i] > 0:  # CUDA-core cuBLAS "tn" GEMM
            strips = operand_strip_time(
                m[i],
                n[i],
                k[i],
                tiles[j, T_BM],
                tiles[j, T_BN],
                out_split[i],
                out_grid[i],
                sms * out_b[i],
                tiles[j, T_RASTER],
                elem_bytes,
                device,
                consts,
            )
            out_time[i] = max(out_time[i], strips + overhead)
    return out_tile, out_split, out_grid, out_b, out_lim, out_waves, out_tail, out_time


def stream_launch(
    work: np.ndarray,
    bytes_moved: np.ndarray,
    flops: np.ndarray,
    threads: np.ndarray,
    work_per_thread: np.ndarray,
    regs: int,
    limits: np.ndarray,
    device: np.ndarray,
    consts: np.ndarray,
) -> StreamLaunches:
    """Memory-bound kernels (elementwise, norms, pooling, softmax, depthwise conv): one thread per few outputs."""
    _check_layouts(None, device)
    return StreamLaunches(
        *_stream_launch(work, bytes_moved, flops, threads, work_per_thread, regs, limits, device, consts)
    )


@njit(cache=True)
def _stream_launch(
    work: np.ndarray,
    bytes_moved: np.ndarray,
    flops: np.ndarray,
    threads: np.ndarray,
    work_per_thread: np.ndarray,
    regs: int,
    limits: np.ndarray,
    device: np.ndarray,
    consts: np.ndarray,
):
    """stream_launch's compiled loop: (grid, CTAs per SM, limiter, waves, tail fill, time) arrays."""
    count = work.shape[0]
    out_grid, out_b, out_lim, out_waves, out_tail, out_time = _launch_arrays(count)
    sms = int(device[D_SMS])
    dram_bw = device[D_DRAM_BW] * consts[C_DRAM_EFF]
    rate = device[D_SIMT_RATE] * consts[C_SIMT_EFF]
    for i in range(count):
        per_cta = threads[i] * work_per_thread[i]
        grid = max(1, (work[i] + per_cta - 1) // per_cta)
        b, lim, waves, tail, busy = launch_waves(
            grid, threads[i], regs, 0, flops[i] / grid, bytes_moved[i] / grid, rate / sms, dram_bw, limits, sms, consts
        )
        out_grid[i], out_b[i], out_lim[i], out_waves[i], out_tail[i] = grid, b, lim, waves, tail
        out_time[i] = busy + consts[C_OVERHEAD]
    return out_grid, out_b, out_lim, out_waves, out_tail, out_time
