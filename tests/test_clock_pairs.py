"""validation.clock_pairs: the clock a GPU ran at, read off rows that ran the same kernel as on the V100."""

from __future__ import annotations

import pytest

from gpusim.spec import load_spec
from validation.calibrate import shared_timing_files
from validation.clock_pairs import implied_clocks, table
from validation.readers import Measurement


def test_a_pair_scales_by_lanes_and_time(monkeypatch, tmp_path):
    """One Linear on the V100 (80 SMs x 64 lanes, 1380 MHz) in 4000 us and on the T4 (40 x 64) in 12000 us with
    the same kernel: the T4 ran at 1380 x 2 x 4000 / 12000 = 920 MHz; a row under 2 ms or of another kernel
    gives nothing."""
    import gpusim
    import validation.clock_pairs as cp

    def row(device: str, us: float, kernel: str, op) -> Measurement:
        return Measurement(op=op, device=device, dtype="fp32", latency_us=us, grid=None, kernel=kernel, sweep="",
                           row=0, torch="", sm_clock_mhz=None, timing="op_wall")  # fmt: skip

    big, small, other = (gpusim.Linear(b, 4096, 4096) for b in (8192, 64, 4096))
    rows = [
        row("Tesla V100-PCIE-32GB", 4000.0, "volta_sgemm_128x128_tn", big),
        row("Tesla T4", 12000.0, "volta_sgemm_128x128_tn", big),
        row("Tesla V100-PCIE-32GB", 1000.0, "volta_sgemm_128x128_tn", small),
        row("Tesla T4", 3000.0, "volta_sgemm_128x128_tn", small),
        row("Tesla V100-PCIE-32GB", 4000.0, "volta_sgemm_128x64_tn", other),
        row("Tesla T4", 12000.0, "volta_sgemm_128x128_tn", other),
    ]
    monkeypatch.setattr(cp, "read_timings", lambda path: type("T", (), {"measurements": rows})())
    monkeypatch.setattr(cp, "MIN_PAIRS", 1)
    clocks = implied_clocks([tmp_path / "rows.csv"])
    assert list(clocks) == [("Tesla T4", "linear")]
    assert clocks[("Tesla T4", "linear")] == pytest.approx([920.0])


def test_the_t4_runs_its_gemms_and_convs_at_different_clocks(measured_dir):
    """Against the V100's same kernels, the T4's linears ran at a median 812 MHz (479 pairs >= 2 ms) and its
    convs at 979 (267 pairs): 14% below and 5% above the one CUDA-core clock (928.7) the rule gives it."""
    rows = {(r["gpu"], r["op"]): r for r in table(implied_clocks(shared_timing_files()))}
    linear, conv = rows[("Tesla T4", "linear")], rows[("Tesla T4", "conv2d")]
    assert (linear["pairs"], conv["pairs"]) == (479, 267)
    assert linear["implied_mhz_median"] == pytest.approx(812, abs=2)
    assert conv["implied_mhz_median"] == pytest.approx(979, abs=2)
    assert (
        linear["spec_mhz"] == conv["spec_mhz"] == pytest.approx(928.7, abs=0.1) == load_spec("t4").sustained_clock_mhz
    )


def test_the_t4_runs_its_128x64_sgemm_slower_per_clock_than_its_128x128_one(measured_dir):
    """Grouped per recorded kernel, the same launches imply 820 MHz for the T4's volta_sgemm_128x128_tn (419
    pairs) but 691 for its 128x64 kernel (60 pairs): the V100 runs both at its 1380 MHz, so on the T4 the
    smaller tile runs as if clocked 16% lower than the larger one (docs/accuracy.md)."""
    rows = {(r["op"], r["kernel"]): r for r in table(implied_clocks(shared_timing_files(), by_kernel=True))}
    big, small = rows[("linear", "volta_sgemm_128x128_tn")], rows[("linear", "volta_sgemm_128x64_tn")]
    assert (big["pairs"], small["pairs"]) == (419, 60)
    assert big["implied_mhz_median"] == pytest.approx(820, abs=2)
    assert small["implied_mhz_median"] == pytest.approx(691, abs=2)
