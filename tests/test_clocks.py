"""validation: SM clocks sampled while timing, read back, summarised, and used for scoring."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import pytest

from gpusim import Linear, predict
from gpusim.spec import load_spec
from tests.test_validation import cli_in_process, project_row, write_project_csv
from validation.clock_summary import SUSTAINED_US, summarize_clocks
from validation.clocks import ClockSampler, parse_smi, sampler_for
from validation.readers import DataError, read_timings
from validation.score import score


def test_window_medians_and_drops_what_it_has_read() -> None:
    sampler = ClockSampler(lambda: None)
    for when, mhz, watts in ((1.0, 1590.0, 30.0), (2.0, 1100.0, math.nan), (3.0, 900.0, 70.0), (5.0, 800.0, 69.0)):
        sampler.add(when, mhz, watts)
    assert sampler.window(1.5, 3.5) == (1000.0, 70.0)  # median of 1100 and 900; the nan power is skipped
    assert sampler.window(0.0, 4.0) == (None, None)  # 1.0 went with the first window
    assert sampler.window(4.0, 6.0) == (800.0, 69.0)


def test_sampler_thread_records_while_open() -> None:
    with ClockSampler(lambda: (1234.0, 55.5), poll_s=0.001) as sampler:
        start = time.monotonic()
        time.sleep(0.05)
        end = time.monotonic()
    assert sampler.window(start, end) == (1234.0, 55.5)


@pytest.mark.parametrize(
    "text, reading",
    [
        ("1590, 69.52\n", (1590.0, 69.52)),
        ("585, [N/A]\n", (585.0, math.nan)),
        ("[N/A], [N/A]\n", None),
        ("", None),
        ("1590\n", None),
    ],
)
def test_parse_nvidia_smi_line(text: str, reading) -> None:
    got = parse_smi(text)
    if reading is None or not math.isnan(reading[1]):
        assert got == reading
    else:
        assert got[0] == reading[0] and math.isnan(got[1])


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU driver is present: NVML may answer")
def test_no_driver_no_sampler() -> None:
    assert sampler_for("0") is None  # pynvml is installed but finds no driver, and there is no nvidia-smi


def _clocked(op, median_us: float, clock_mhz: float | None) -> dict:
    row = project_row(op, median_us)
    if clock_mhz is not None:
        row["sm_clock_mhz"] = f"{clock_mhz:g}"
    return row


def test_reader_takes_the_clock_and_rejects_a_bad_one(capsys, tmp_path: Path) -> None:
    op = Linear(64, 256, 128)
    path = write_project_csv(tmp_path / "c.csv", [_clocked(op, 50.0, 900.0), _clocked(op, 50.0, None)])
    assert [m.sm_clock_mhz for m in read_timings(path).measurements] == [900.0, None]
    bad = write_project_csv(tmp_path / "bad.csv", [_clocked(op, 50.0, -5.0)])
    code, _, err = cli_in_process(capsys, "validate", "score", "--data", bad)
    assert code == 2 and err.count("\n") == 1 and "row 2, column 'sm_clock_mhz': must be positive" in err


def test_scoring_at_the_recorded_clock(tmp_path: Path) -> None:
    """A compute-bound SGEMM (T4, ~60 ms) recorded at half the spec's CUDA-core clock is predicted ~2x as long on
    the GPU; rows without a clock, and every row without the option, use the spec's clock."""
    op = Linear(8192, 4096, 4096)
    spec_us = predict([op], "t4", "fp32")
    host = spec_us.host_overhead_us[0]
    half = load_spec("t4").sustained_clock_mhz / 2  # 928.7 / 2 (the clock rule)
    timings = read_timings(write_project_csv(tmp_path / "s.csv", [_clocked(op, 1e5, half), _clocked(op, 1e5, None)]))
    at_clock = score(timings, recorded_clock=True).predicted_us
    assert (at_clock[0] - host) / (spec_us.isolated_us[0] - host) == pytest.approx(2.0, rel=0.01)
    assert at_clock[1] == pytest.approx(spec_us.isolated_us[0])
    assert list(score(timings).predicted_us) == pytest.approx([spec_us.isolated_us[0]] * 2)
    t4 = load_spec("t4")
    assert t4.at_clock(2000.0).peak_flops_per_us("fp32") == pytest.approx(8.1e6 * 2000 / 1590)  # past boost


def test_clock_summary_suggests_the_sustained_median(capsys, tmp_path: Path) -> None:
    big, small = Linear(8192, 4096, 4096), Linear(64, 256, 128)
    rows = [
        _clocked(big, 60_000.0, 900.0),
        _clocked(big, 61_000.0, 950.0),
        _clocked(big, SUSTAINED_US, 1000.0),
        _clocked(small, 40.0, 1590.0),
        _clocked(small, 40.0, None),
    ]
    path = write_project_csv(tmp_path / "clocks.csv", rows)
    report = summarize_clocks(read_timings(path))
    (t4,) = report.devices
    assert (t4.device, round(t4.spec_sustained_mhz, 1), t4.boost_mhz) == ("Tesla T4", 928.7, 1590.0)  # clock rule
    assert (t4.sustained_rows, t4.suggested_sustained_mhz) == (3, 950.0)  # the 40 us row idles the GPU: not counted
    assert [(g.op, g.rows, g.median_mhz, g.p10_mhz) for g in report.groups] == [("linear", 3, 950.0, 910.0)]
    code, out, _ = cli_in_process(capsys, "validate", "clocks", "--data", path, "--json")
    assert code == 0 and json.loads(out)["devices"][0]["suggested_sustained_mhz"] == 950.0
    code, out, _ = cli_in_process(capsys, "validate", "clocks", "--data", path)
    assert code == 0 and "suggested sustained" in out and "950" in out


def test_clock_summary_without_clocks_is_one_line(capsys, tmp_path: Path) -> None:
    path = write_project_csv(tmp_path / "none.csv", [_clocked(Linear(64, 256, 128), 40.0, None)])
    with pytest.raises(DataError, match="no row records sm_clock_mhz"):
        summarize_clocks(read_timings(path))
    code, out, err = cli_in_process(capsys, "validate", "clocks", "--data", path)
    assert code == 2 and out == "" and err.count("\n") == 1 and str(path) in err


def test_run_writes_clocks_json(capsys, tmp_path: Path) -> None:
    from wavecut.validate_cmd import _clocks_of_run

    big = Linear(8192, 4096, 4096)
    data = write_project_csv(tmp_path / "m.csv", [_clocked(big, 60_000.0, 900.0), _clocked(big, 60_000.0, 1000.0)])
    _clocks_of_run(data, None, tmp_path / "report" / "clocks.json")
    written = json.loads((tmp_path / "report" / "clocks.json").read_text())
    assert written["devices"][0]["suggested_sustained_mhz"] == 950.0
    assert "predicted at the recorded clocks: MAPE" in capsys.readouterr().out
    bare = write_project_csv(tmp_path / "bare.csv", [_clocked(big, 60_000.0, None)])
    _clocks_of_run(bare, None, tmp_path / "none.json")
    assert "no SM clock was recorded" in capsys.readouterr().out and not (tmp_path / "none.json").exists()


def test_clock_cells_from_the_timed_window() -> None:
    from validation.measure import Timing, clock_cells

    sampler = ClockSampler(lambda: None)
    sampler.add(10.0, 1005.4, 68.26)
    timing = Timing(median_us=1.0, p10_us=1.0, p90_us=1.0, repeats=50, start_s=9.0, end_s=11.0)
    assert clock_cells(sampler, timing) == {"sm_clock_mhz": "1005", "power_w": "68.3"}
    assert clock_cells(None, timing) == clock_cells(sampler, timing) == {"sm_clock_mhz": "", "power_w": ""}
