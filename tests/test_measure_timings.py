"""`validate measure` records both timings of every op: `op_wall` (events) and `gpu_kernel` (the profiler's kernel
sum, from a separate pass), dry-run on the CPU with an injected profiler; the trace parsing; unknown timings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from gpusim import Linear, Matmul
from tests.test_validation import cli_in_process, write_project_csv
from validation import measure
from validation.readers import read_timings

torch = pytest.importorskip("torch")


def _fake_profiler(log: list[str]) -> measure.Profiler:
    """Call i launches a main kernel of 10 + i us and a 2 us tail: sums 12 ... 31 us over 20 calls."""

    def profile(fn, calls, flush):
        out = []
        for i in range(calls):
            if flush is not None:
                flush()
                log.append("flush")
            fn()
            log.append("call")
            out.append(
                [
                    measure.KernelRecord("k_main", (4, 2, 1), (128, 1, 1), 10.0 + i),
                    measure.KernelRecord("k_tail", (1, 1, 1), (32, 1, 1), 2.0),
                ]
            )
        return out

    return profile


def test_both_timings_per_row(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(measure, "TARGET_TIMED_US", 2_000.0)
    log: list[str] = []
    monkeypatch.setattr(measure, "profiler_for", lambda device: _fake_profiler(log))
    sweep = tmp_path / "two.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "name": "two",
                "description": "test",
                "dtypes": ["fp32"],
                "cases": [
                    {"op": "linear", "batch": 8, "in_features": 16, "out_features": 32},
                    {"op": "bmm", "batch": 2, "m": 4, "n": 8, "k": 16},
                ],
            }
        )
    )
    out = tmp_path / "out.csv"
    code, _, _ = cli_in_process(
        capsys, "validate", "measure", "--sweep", sweep, "--out", out, "--device", "cpu", "--l2-flush"
    )
    assert code == 0
    # the profiled pass: PROFILED_CALLS calls per op, each after a flush that is no part of the call
    assert measure.PROFILED_CALLS == 20 and log == ["flush", "call"] * 40
    ms = read_timings(out).measurements
    assert [(m.op, m.timing) for m in ms] == [
        (Linear(8, 16, 32), "op_wall"),
        (Linear(8, 16, 32), "gpu_kernel"),
        (Matmul(2, 4, 8, 16), "op_wall"),
        (Matmul(2, 4, 8, 16), "gpu_kernel"),
    ]
    sums = np.arange(12.0, 32.0)  # 12 ... 31 us
    rows = out.read_text().splitlines()
    header = rows[0].split(",")
    kernel_row = dict(zip(header, rows[2].split(",")))
    assert kernel_row["timing"] == "gpu_kernel" and float(kernel_row["median_us"]) == pytest.approx(21.5)
    assert float(kernel_row["p10_us"]) == pytest.approx(np.percentile(sums, 10)) == pytest.approx(13.9)
    assert float(kernel_row["p90_us"]) == pytest.approx(29.1) and kernel_row["repeats"] == "20"
    assert (kernel_row["kernel"], kernel_row["grid_x"], kernel_row["kernels"]) == ("k_main", "4", "k_main;k_tail")
    wall_row = dict(zip(header, rows[1].split(",")))
    assert wall_row["timing"] == "op_wall" and int(wall_row["repeats"]) >= measure.MIN_REPEATS
    assert wall_row["kernel"] == "k_main"  # both rows name the op's kernels
    # the recorded file scores both ways in one pass: each row against the prediction of its own kind
    code, stdout, _ = cli_in_process(capsys, "validate", "score", "--data", out, "--gpu", "t4", "--json")
    by_timing = json.loads(stdout)["by_timing"]
    assert code == 0 and {k: v["rows"] for k, v in by_timing.items()} == {"op_wall": 2, "gpu_kernel": 2}


def test_the_cpu_dry_run_has_no_profiler_and_one_row_per_op() -> None:
    assert measure.profiler_for("cpu") is None and measure.profiler_for("cuda") is measure.profile_calls
    rows = list(measure.measure([measure.Task(Linear(4, 8, 8), "fp32", "s")], "cpu"))
    assert [r["timing"] for r in rows] == ["op_wall"] and rows[0]["kernel"] == ""


def test_a_call_without_kernels_gets_no_kernel_row() -> None:
    timing, kernels = measure.kernel_timing(lambda: None, lambda fn, calls, flush: [[]] * calls, None)
    assert timing is None and kernels == []


def _trace() -> dict:
    """Two profiled calls as torch's Chrome trace writes them: CPU ranges, CPU-side launches with a correlation id,
    GPU kernels carrying it; a flush kernel launched between the calls; a memset (not a kernel)."""

    def launch(ts, corr):
        return {"cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": ts, "dur": 2, "args": {"correlation": corr}}

    def kernel(name, ts, dur, corr, grid):
        return {"cat": "kernel", "name": name, "ts": ts, "dur": dur, "args": {"correlation": corr, "grid": grid}}

    return {
        "traceEvents": [
            {"cat": "user_annotation", "name": "wavecut_call_1", "ts": 200, "dur": 50},
            {"cat": "user_annotation", "name": "wavecut_call_0", "ts": 100, "dur": 50},
            {"cat": "gpu_user_annotation", "name": "wavecut_call_0", "ts": 120, "dur": 80},
            launch(110, 7),
            launch(120, 8),
            launch(170, 9),  # the flush, between the calls
            {"cat": "cuda_driver", "name": "cuLaunchKernel", "ts": 210, "dur": 2, "args": {"correlation": 10}},
            kernel("sgemm", 130, 40.0, 7, [8, 4, 1]),
            kernel("splitKreduce", 171, 3.0, 8, [2, 1, 1]),
            kernel("zero_flush", 180, 30.0, 9, [99, 1, 1]),
            kernel("sgemm", 220, 38.5, 10, [8, 4, 1]),
            {"cat": "gpu_memset", "name": "Memset", "ts": 125, "dur": 1.0, "args": {"correlation": 7}},
        ]
    }


def test_kernels_are_attributed_to_their_call() -> None:
    calls = measure.kernels_by_call(_trace())
    assert [[(k.name, k.duration_us) for k in call] for call in calls] == [
        [("sgemm", 40.0), ("splitKreduce", 3.0)],
        [("sgemm", 38.5)],
    ]
    assert calls[0][0].grid == (8, 4, 1)
    timing, first = measure.kernel_timing(lambda: None, lambda fn, n, flush: calls, None)
    assert (timing.median_us, timing.repeats, first) == (pytest.approx((43.0 + 38.5) / 2), 2, calls[0])


def test_an_unknown_timing_is_one_line_naming_file_row_and_allowed_values(capsys, tmp_path: Path) -> None:
    op = {"op": "linear", "batch": "8", "in_features": "16", "out_features": "32", "dtype": "fp32"}
    rows = [
        {**op, "device": "Tesla T4", "median_us": "50", "timing": "op_wall"},
        {**op, "device": "Tesla T4", "median_us": "40", "timing": "kernel_only"},
    ]
    path = write_project_csv(tmp_path / "t.csv", rows)
    code, _, err = cli_in_process(capsys, "validate", "score", "--data", path)
    assert code == 2 and err.count("\n") == 1
    assert f"{path}: row 3, column 'timing': unknown timing 'kernel_only'" in err
    assert "allowed: op_wall, gpu_kernel, host_wall_step" in err
