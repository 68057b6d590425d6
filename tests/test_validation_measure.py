"""validation: sweeps, the timing harness (CPU dry run; CUDA when present) and `wavecut specs new`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gpusim import Conv2d, Linear, Matmul
from gpusim.errors import SpecError
from gpusim.spec import load_spec_file
from tests.test_validation import cli_in_process
from validation import measure
from validation.readers import read_timings
from validation.sweeps import SweepError, expand_case, expand_values, load_sweep, shipped_sweeps, sweep_ops
from wavecut.specs_new import DeviceFacts, count_todos, draft_spec, slug

torch = pytest.importorskip("torch")
has_cuda = torch.cuda.is_available()


def test_shipped_sweeps_expand() -> None:
    assert {"conv3x3", "conv1x1", "depthwise", "linear", "batch", "networks"} <= set(shipped_sweeps())
    counts = {name: len(sweep_ops(load_sweep(name))) for name in ("conv3x3", "depthwise", "linear", "smoke", "gemm")}
    assert counts == {"conv3x3": 4 * 256, "depthwise": 64 * 4, "linear": 1024, "smoke": 7, "gemm": 6 + 4 + 3 + 3}
    assert {tuple(s.dtypes) for s in map(load_sweep, ("conv3x3", "linear"))} == {("fp32", "tf32", "fp16")}


def test_case_expansion() -> None:
    assert expand_values("8:32:8", "x") == [8, 16, 24, 32] and expand_values([3, 1], "x") == [3, 1]
    ops = expand_case({"op": "depthwise", "batch": 2, "channels": "8:16:8", "size": 7}, "c")
    assert ops == [Conv2d(2, 8, 8, 7, 7, groups=8), Conv2d(2, 16, 16, 7, 7, groups=16)]
    assert expand_case({"op": "bmm", "batch": 4, "m": 8, "n": 16, "k": 32}, "c") == [Matmul(4, 8, 16, 32)]
    with pytest.raises(SweepError, match="field 'channels' unknown for linear"):
        expand_case({"op": "linear", "batch": 1, "channels": 3}, "c")
    with pytest.raises(SweepError, match="A:B / A:B:STEP"):
        expand_values("9:1", "c.batch")
    with pytest.raises(SweepError, match="shipped: "):
        load_sweep("no-such-sweep")


def test_kernels_from_trace_and_cells() -> None:
    trace = {
        "traceEvents": [
            {"cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": 1},
            {
                "cat": "kernel",
                "name": "ampere_sgemm_128x64_tn",
                "ts": 20,
                "dur": 40.0,
                "args": {"grid": [20, 16, 1], "block": [128, 1, 1]},
            },
            {
                "cat": "kernel",
                "name": "splitKreduce_kernel",
                "ts": 70,
                "dur": 3.0,
                "args": {"grid": [8, 1, 1], "block": [256, 1, 1]},
            },
            {"cat": "gpu_memset", "name": "Memset", "ts": 5, "dur": 1.0},
        ]
    }
    kernels = measure.kernels_from_trace(trace)
    assert [(k.name, k.grid, k.block) for k in kernels] == [
        ("ampere_sgemm_128x64_tn", (20, 16, 1), (128, 1, 1)),
        ("splitKreduce_kernel", (8, 1, 1), (256, 1, 1)),
    ]
    cells = measure.kernel_cells(kernels)
    assert (cells["kernel"], cells["grid_x"], cells["grid_y"], cells["block_x"]) == (
        "ampere_sgemm_128x64_tn",
        "20",
        "16",
        "128",
    )
    assert cells["kernels"] == "ampere_sgemm_128x64_tn;splitKreduce_kernel"
    assert set(measure.kernel_cells([]).values()) == {""}


def test_repeats_adapt_within_bounds() -> None:
    assert measure.repeats_for(1e6) == measure.MIN_REPEATS == 50
    assert measure.repeats_for(100.0) == 500
    assert measure.repeats_for(0.01) == measure.MAX_REPEATS


def test_network_layers() -> None:
    from validation.sweeps import NetworkCase

    ops = measure.network_ops(NetworkCase(model="resnet18", batch=4, size=64))
    assert len(ops) == 21  # 17 3x3/7x7 convs + 3 downsample 1x1 convs + fc
    assert ops[0] == Conv2d(4, 3, 64, 64, 64, (7, 7), (2, 2), (3, 3), (1, 1), 1, name="resnet18.conv1")
    assert ops[-1] == Linear(4, 512, 1000, name="fc")


def test_measure_dry_run_on_cpu(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(measure, "TARGET_TIMED_US", 2_000.0)
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "description": "test",
                "dtypes": ["fp32"],
                "cases": [
                    {
                        "op": "conv2d",
                        "batch": 1,
                        "in_channels": 4,
                        "out_channels": [4, 8],
                        "size": 8,
                        "kernel_size": 3,
                        "padding": 1,
                    },
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
    t = read_timings(out)
    assert t.format == "project" and len(t.measurements) == 4
    assert [m.op for m in t.measurements][1:] == [
        Conv2d(1, 4, 8, 8, 8, 3, 1, 1),
        Linear(8, 16, 32),
        Matmul(2, 4, 8, 16),
    ]
    assert {(m.device, m.dtype, m.sweep, m.kernel, m.grid) for m in t.measurements} == {
        ("cpu", "fp32", "tiny", "", None)
    }
    rows = out.read_text().splitlines()
    cells = dict(zip(rows[0].split(","), rows[1].split(",")))
    assert int(cells["repeats"]) >= 50 and cells["l2_flush"] == "1" and cells["torch"] == torch.__version__
    assert cells["sm_clock_mhz"] == cells["power_w"] == ""  # no GPU: no clock sampler
    assert float(cells["p10_us"]) <= float(cells["median_us"]) <= float(cells["p90_us"])
    code, stdout, _ = cli_in_process(capsys, "validate", "score", "--data", out, "--gpu", "t4", "--json")
    assert code == 0 and json.loads(stdout)["by_device"]["cpu"]["rows"] == 4


@pytest.mark.skipif(has_cuda, reason="checks the error printed when no CUDA GPU is present")
def test_no_cuda_errors(capsys, tmp_path: Path) -> None:
    code, _, err = cli_in_process(capsys, "validate", "measure", "--sweep", "smoke", "--out", tmp_path / "x.csv")
    assert code == 2 and "no CUDA GPU" in err and "--device cpu" in err and err.count("\n") == 1
    code, _, err = cli_in_process(capsys, "specs", "new", "--from-device")
    assert code == 2 and "no CUDA GPU" in err and err.count("\n") == 1


@pytest.mark.cuda
@pytest.mark.skipif(not has_cuda, reason="needs a CUDA GPU")
def test_measure_on_cuda(capsys, tmp_path: Path) -> None:
    out = tmp_path / "smoke.csv"
    code, _, _ = cli_in_process(capsys, "validate", "measure", "--sweep", "smoke", "--out", out)
    assert code == 0
    t = read_timings(out)
    assert len(t.measurements) == 7 and all(m.kernel and m.grid for m in t.measurements)
    assert t.measurements[0].device == torch.cuda.get_device_name()


def a100_facts() -> DeviceFacts:
    """What torch reports on an A100 PCIe 40GB."""
    return DeviceFacts(
        name="NVIDIA A100-PCIE-40GB",
        major=8,
        minor=0,
        multi_processor_count=108,
        total_memory=42505273344,
        L2_cache_size=41943040,
        clock_rate=1410000,
        memory_clock_rate=1215000,
        memory_bus_width=5120,
        max_threads_per_multi_processor=2048,
        regs_per_multiprocessor=65536,
        max_threads_per_block=1024,
        warp_size=32,
    )


def test_draft_spec_from_facts(tmp_path: Path) -> None:
    spec, note = draft_spec(a100_facts())
    assert note == "" and slug("NVIDIA A100-PCIE-40GB") == "a100-pcie-40gb"
    assert (spec["architecture"], spec["sm_count"], spec["fp32_cores_per_sm"]) == ("ampere", 108, 64)
    assert spec["peak_tflops"]["fp32"] == pytest.approx(19.49)  # 108 x 64 x 2 x 1410 MHz
    assert spec["memory_bandwidth_gbs"] == pytest.approx(1555.2)  # 2 x 1215 MHz x 5120 bit / 8
    assert spec["l2_cache_mb"] == 40.0 and spec["boost_clock_mhz"] == 1410.0
    assert spec["memory_bus_bits"] == 5120 and spec["memory_type"].startswith("TODO")
    # base clock, TDP, memory type, tf32/fp16/bf16/int8
    assert count_todos({k: v for k, v in spec.items() if k != "sources"}) == 7
    assert spec["base_clock_mhz"].startswith("TODO") and spec["tdp_w"].startswith("TODO")
    path = tmp_path / "draft.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match="base_clock_mhz"):
        load_spec_file(path)


def test_draft_spec_unknown_clock_and_capability() -> None:
    facts = a100_facts().model_copy(update={"major": 11, "minor": 0, "clock_rate": 0, "memory_clock_rate": 0})
    spec, note = draft_spec(facts)
    assert spec["boost_clock_mhz"].startswith("TODO") and spec["memory_bandwidth_gbs"].startswith("TODO")
    assert spec["peak_tflops"]["fp32"].startswith("TODO") and spec["fp32_cores_per_sm"].startswith("TODO")
    assert "sm_110.yaml does not exist" in note


def test_run_dry_on_cpu_writes_data_report_and_says_no_clocks(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(measure, "TARGET_TIMED_US", 2_000.0)
    code, out, _ = cli_in_process(
        capsys,
        "validate",
        "run",
        "--device",
        "cpu",
        "--gpu",
        "t4",
        "--sweeps",
        "smoke",
        "--dtype",
        "fp32",
        "--out-dir",
        tmp_path,
    )
    assert code == 0 and "no SM clock was recorded" in out
    assert len(read_timings(tmp_path / "measurements.csv").measurements) == 7
    assert (tmp_path / "report" / "report.md").is_file() and not (tmp_path / "report" / "clocks.json").exists()


def test_device_session_script_dry_run(tmp_path: Path) -> None:
    """validation/device_session.sh as a device call runs it, on the CPU: one archive and the log in $OUT."""
    import os
    import subprocess
    import tarfile

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OUT": str(tmp_path), "WAVECUT_RUN_ARGS": "--device cpu --gpu t4"}
    subprocess.run(
        ["bash", "validation/device_session.sh", "fp32", "smoke"],
        cwd=repo,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    with tarfile.open(tmp_path / "run-fp32.tgz") as archive:
        assert {"./measurements.csv", "./report/report.md"} <= set(archive.getnames())
    assert "predicted CTA count" in (tmp_path / "run-fp32.log").read_text()
