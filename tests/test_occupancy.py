"""Occupancy against hand-computed cases (CUDA occupancy calculator rules) for CC 7.5, 8.0 and 9.0."""

import pytest

from gpusim import OpError, occupancy

# (gpu, threads, registers/thread, shared bytes/CTA, expected CTAs/SM, expected limiter); the arithmetic:
CASES = [
    # T4, CC 7.5: 32 warps, 16 CTAs, 64 KB shared (256 B unit, no reservation), 4 register partitions.
    ("t4", 32, 32, 0, 16, "blocks"),  # 1 warp/CTA: 32 warps, 64 by registers, 16 CTA slots
    ("t4", 256, 32, 0, 4, "warps"),  # 8 warps/CTA: 32 // 8 = 4; registers allow 8
    ("t4", 256, 128, 0, 2, "registers"),  # 128*32 = 4096/warp; 16384 // 4096 = 4 warps/partition -> 16 // 8 = 2
    ("t4", 64, 32, 20000, 3, "shared_memory"),  # roundup(20000, 256) = 20224; 65536 // 20224 = 3
    # A100, CC 8.0: 64 warps, 32 CTAs, 164 KB shared, 128 B unit, 1 KB reserved per CTA.
    ("a100", 32, 32, 0, 32, "blocks"),
    ("a100", 256, 16, 0, 8, "warps"),  # 64 // 8 = 8; registers allow 16
    ("a100", 128, 33, 0, 12, "registers"),  # 33*32 = 1056 -> 1280; 16384 // 1280 = 12/partition -> 48 // 4 = 12
    ("a100", 128, 32, 49152, 3, "shared_memory"),  # 49152 + 1024 = 50176; 167936 // 50176 = 3
    # H100, CC 9.0: 64 warps, 32 CTAs, 228 KB shared, 128 B unit, 1 KB reserved.
    ("h100", 64, 32, 0, 32, "blocks"),
    ("h100", 1024, 16, 0, 2, "warps"),  # 64 // 32 = 2; registers allow 4
    ("h100", 384, 168, 0, 1, "registers"),  # 168*32 = 5376; 16384 // 5376 = 3/partition -> 12 // 12 = 1
    ("h100", 128, 32, 102400, 2, "shared_memory"),  # 103424 per CTA; 233472 // 103424 = 2
]


@pytest.mark.parametrize("gpu,threads,regs,smem,blocks,limiter", CASES)
def test_hand_computed_occupancy(gpu, threads, regs, smem, blocks, limiter):
    occ = occupancy(gpu, threads_per_block=threads, registers_per_thread=regs, shared_memory_per_block=smem)
    assert (occ.blocks_per_sm, occ.limiter) == (blocks, limiter)


def test_one_256x128_cta_per_sm_on_a100():
    """A CUTLASS 256x128 tensor-op CTA: 256 threads at 255 registers fit once per A100 SM."""
    occ = occupancy("a100", threads_per_block=256, registers_per_thread=255, shared_memory_per_block=0)
    assert occ.blocks_per_sm == 1 and occ.limiter == "registers"
    assert occ.occupancy == pytest.approx(8 / 64)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"threads_per_block": 2048}, "threads_per_block"),
        ({"threads_per_block": 0}, "threads_per_block"),
        ({"threads_per_block": 128, "registers_per_thread": 256}, "registers_per_thread"),
        ({"threads_per_block": 128, "shared_memory_per_block": 300_000}, "shared_memory_per_block"),
    ],
)
def test_impossible_launch_is_a_clear_error(kwargs, field):
    with pytest.raises(OpError, match=field):
        occupancy("a100", **kwargs)
