"""wavecut sweep: config validation, per-row errors, resuming after an interrupt, plans, and a real Dask cluster."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from gpusim.errors import WavecutError
from planner.network import Network, Setting
from planner.sweep import SweepConfig, dask_client, load_config, run_on, run_sweep, tasks, traced, width_samples
from tests.conftest import run_cli

SHAPE = [3, 64, 64]
GRID = {
    "models": ["resnet18", "no_such_net"],
    "gpus": ["a100", "t4", "no_such_gpu"],
    "batch": [1, 8],
    "input_shape": SHAPE,
    "widths": {"samples": 6, "seed": 3},
    "chunk": 4,
}


def _rows(path: Path) -> dict[str, dict]:
    with path.open() as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def test_bad_config_is_one_line_naming_the_file_and_field(tmp_path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text("models: [resnet18]\ngpus: [a100]\ndtype: [fp17]\n")
    with pytest.raises(WavecutError, match=r"grid.yaml: field 'dtype.0': Input should be 'fp32', "):
        load_config(path)
    path.write_text("models: [resnet18]\ngpus: [a100]\nwidhts: {samples: 3}\n")
    with pytest.raises(WavecutError, match=r"grid.yaml: field 'widhts': unknown field"):
        load_config(path)
    path.write_text("models: [resnet18]\ngpus: [a100]\nwidths: {samples: 3, keep: [0.5], step: 8}\n")
    with pytest.raises(WavecutError, match=r"grid.yaml: field 'widths': Value error, give either keep or step"):
        load_config(path)
    result = run_cli("sweep", str(path), "--workers", "0")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "field 'widths'" in result.stderr


def test_sweep_rows_equal_predict_many_and_bad_configurations_are_rows(tmp_path) -> None:
    cfg = SweepConfig(**GRID)
    results = run_sweep(cfg, tmp_path / "out.csv")
    rows = list(_rows(tmp_path / "out.csv").values())
    assert len(rows) == 2 * 3 * 2 * 6  # models x gpus x batch x width vectors, bad ones included
    failed = [r for r in rows if r["error"]]
    assert len(failed) == 3 * 2 * 6 + 2 * 6  # every no_such_net row, and resnet18 on no_such_gpu
    assert all("unknown GPU 'no_such_gpu'" in r["error"] for r in failed if r["model"] == "resnet18")
    assert all(r["error"].startswith("unknown model 'no_such_net'") for r in failed if r["gpu"] != "no_such_gpu")
    net, groups = traced("resnet18", tuple(SHAPE))
    widths = width_samples("resnet18", groups, cfg.widths)
    ok = sorted((r for r in rows if not r["error"]), key=lambda r: (r["gpu"], int(r["batch"]), int(r["width_index"])))
    expected = [net.predict_many([Setting(g, b)], widths, groups)[0] for g in ("a100", "t4") for b in (1, 8)]
    assert [float(r["latency_us"]) for r in ok] == np.concatenate(expected).tolist()
    assert ok[0]["widths"] == ",".join(map(str, widths[0])) and ok[0]["gpu_spec_hash"] and ok[0]["torch_version"]
    assert len(results.done) == len(rows)


def test_rerun_after_an_interrupt_runs_only_the_missing_rows(tmp_path) -> None:
    cfg = SweepConfig(**{**GRID, "models": ["resnet18"], "gpus": ["a100"]})
    out = tmp_path / "out.csv"
    run_sweep(cfg, out)
    complete = out.read_text()
    lines = complete.splitlines(keepends=True)
    out.write_text("".join(lines[:6]) + lines[6][:30])  # header, 5 rows, and a row torn by the interrupt
    progress = []
    run_sweep(cfg, out, on_start=lambda done, todo: progress.append((done, todo)))
    assert progress == [(5, 12 - 5)]
    assert _rows(out) == {r["id"]: r for r in csv.DictReader(complete.splitlines())}
    assert out.read_text().splitlines()[:6] == complete.splitlines()[:6]  # finished rows kept as written
    progress.clear()
    run_sweep(cfg, out, on_start=lambda done, todo: progress.append((done, todo)))
    assert progress == [(12, 0)]


def test_plan_rows_meet_their_budget_or_say_why(tmp_path) -> None:
    cfg = SweepConfig(models=["resnet18"], gpus=["t4"], input_shape=SHAPE, plans={"budgets": ["0.8", "5us"]})
    run_sweep(cfg, tmp_path / "out.csv")
    rows = {r["kind"] + r["budget"]: r for r in _rows(tmp_path / "out.csv").values()}
    assert set(rows) == {"predict", "plan0.8", "plan5us"}
    plan = rows["plan0.8"]
    assert float(plan["latency_us"]) <= 0.8 * float(plan["baseline_us"])
    assert float(plan["baseline_us"]) == float(rows["predict"]["latency_us"])  # the unpruned network, both ways
    assert int(plan["channels_kept"]) < int(plan["channels_full"]) and 0 < float(plan["importance_kept"]) < 1
    assert "budget 5.0 us cannot be reached" in rows["plan5us"]["error"]


def test_a_two_worker_dask_cluster_gives_the_local_rows_and_traces_once_per_worker(tmp_path) -> None:
    pytest.importorskip("distributed")
    shape = [3, 56, 56]  # traced nowhere before, so the forked workers start with no trace of it
    cfg = SweepConfig(models=["resnet18"], gpus=["a100", "t4"], input_shape=shape, widths={"samples": 8}, chunk=2)
    with dask_client(None, 2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        before = client.run(lambda: traced.cache_info().misses)
        remote = {r["id"]: r for rows in run_on(client, tasks(cfg)) for r in rows}
        after = client.run(lambda: traced.cache_info().misses)
    local = run_sweep(cfg, tmp_path / "local.csv").done
    assert len(remote) == 16 and not any(r.get("error") for r in remote.values())
    assert {i: float(r["latency_us"]) for i, r in remote.items()} == {
        i: float(r["latency_us"]) for i, r in local.items()
    }
    traces = sorted(after[w] - before[w] for w in after)
    assert traces in ([0, 1], [1, 1])  # 8 tasks, each worker traces the model at most once


def test_latency_table_rows_are_step_edges_priced_as_the_pruned_model(tmp_path) -> None:
    import torchvision

    from examples.lut_torch_pruning import prune
    from planner.lut import latency_table

    net, groups = traced("resnet18", tuple(SHAPE))
    table = latency_table(net, groups, Setting("a100"), tuple(SHAPE))
    assert table.full_latency_us == net.predict("a100").total_us
    for g in table.groups:
        assert g.widths[-1] == g.full_width and g.latency_us[-1] == table.full_latency_us
        assert all(a < b for a, b in zip(g.latency_us, g.latency_us[1:]))  # step edges: each cheaper than wider ones
    g = table.groups[3]  # layer2.0.conv1 narrowed, every other group at full width
    model = torchvision.models.get_model("resnet18", weights=None).eval()
    pruned = prune(model, {g.name: g.widths[0]}, torch.zeros(1, *SHAPE))
    assert Network.from_model(pruned, SHAPE).predict("a100").total_us == pytest.approx(g.latency_us[0], rel=1e-12)
    table.write(tmp_path / "lut.csv")
    lines = (tmp_path / "lut.csv").read_text().splitlines()
    assert lines[0] == "group,full_width,width,latency_us,saved_us,locked"
    assert len(lines) == 1 + sum(len(t.widths) for t in table.groups)
    every8 = latency_table(net, groups, Setting("a100"), tuple(SHAPE), step=8)
    assert every8.groups[0].widths == list(range(8, 65, 8)) and every8.candidates == "every 8 channels"


def test_latency_tables_and_sweeps_take_every_plain_precision_and_refuse_autocast(tmp_path) -> None:
    from planner.lut import latency_table

    net, groups = traced("resnet18", tuple(SHAPE))
    strict = latency_table(net, groups, Setting("a100", dtype="fp32-strict"), tuple(SHAPE))
    # PyTorch's fp32 runs convs in TF32 on an A100; fp32-strict does not, so it is slower
    assert strict.full_latency_us == net.predict("a100", dtype="fp32-strict").total_us
    assert strict.full_latency_us > net.predict("a100", dtype="fp32").total_us
    assert net.predict_many([Setting("a100", dtype="fp32-strict")])[0, 0] == pytest.approx(strict.full_latency_us)
    out = run_cli("lut", "resnet18", "--gpu", "a100", "--dtype", "amp-fp16", "--out", str(tmp_path / "l.json"))
    assert out.returncode == 2 and not (tmp_path / "l.json").exists()
    assert out.stderr.strip().splitlines() == [
        "wavecut: error: --dtype: 'amp-fp16' is not one of fp32, fp32-strict, tf32, fp16, bf16, int8, fp8 "
        "(one precision per op class; autocast's casts are priced by 'wavecut predict' and 'validate networks' only)"
    ]
