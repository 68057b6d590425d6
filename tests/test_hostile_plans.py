"""Hostile plan files, width files and budgets: one error line and exit code 2 each; and a plan never
claims a latency its pruned model does not have (squeezenet's concatenated expand branches)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from planner.apply import apply_plan
from planner.groups import GroupsTooLarge, memory_bound
from planner.plan import make_plan
from tests.hostile import assert_refused

PLAN_ARGS = ["--gpu", "t4", "--batch", "8", "--input", "3x32x32"]


@pytest.fixture(scope="module")
def plan_json(tmp_path_factory) -> dict:
    """A real resnet18 plan (small input: fast), as a JSON object to break."""
    plan = make_plan("resnet18", "t4", "0.7", 8, input_shape=(3, 32, 32))
    return json.loads(plan.model_dump_json())


def _broken(tmp_path: Path, plan: dict, group: int, **changes) -> Path:
    data = json.loads(json.dumps(plan))
    data["groups"][group].update(changes)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    return path


def _pruned_group(plan: dict) -> int:
    return next(i for i, g in enumerate(plan["groups"]) if g["width"] < g["full_width"])


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda g: {"kept": [g["kept"][0]] * g["width"]}, "distinct channel indices"),
        (lambda g: {"kept": [*g["kept"][:-1], g["full_width"] + 5]}, "kept indices must be in 0.."),
        (lambda g: {"kept": [-1, *g["kept"][1:]]}, "kept indices must be in 0.."),
        (lambda g: {"width": 9999}, "width 9999 exceeds full_width"),
        (lambda g: {"width": g["width"] - 1}, "kept lists"),
        (lambda g: {"width": True}, "width"),
        (lambda g: {"width": "64"}, "width"),
        (lambda g: {"width": 0}, "width"),
    ],
)
def test_broken_plan_groups_are_one_line(tmp_path, capsys, monkeypatch, plan_json, change, needle):
    i = _pruned_group(plan_json)
    path = _broken(tmp_path, plan_json, i, **change(plan_json["groups"][i]))
    args = ["apply", str(path), "--out", str(tmp_path / "pruned.pt")]
    assert_refused(args, capsys, monkeypatch, tmp_path, "not a wavecut plan", needle)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\x00\xff\xfe binary \x80", "not a wavecut plan"),
        (b"\xef\xbb\xbf{", "not a wavecut plan"),
        (b"[" * 100000 + b"]" * 100000, "not a wavecut plan"),
        (b'{"kind": "plan"}', "not a wavecut plan"),
    ],
)
def test_unreadable_plan_files_are_one_line(tmp_path, capsys, monkeypatch, content, needle):
    path = tmp_path / "plan.json"
    path.write_bytes(content)
    assert_refused(["apply", str(path), "--out", str(tmp_path / "p.pt")], capsys, monkeypatch, tmp_path, needle)


def test_plan_path_that_is_a_directory_or_missing(tmp_path, capsys, monkeypatch):
    (tmp_path / "dir.json").mkdir()
    assert_refused(["apply", str(tmp_path / "dir.json")], capsys, monkeypatch, tmp_path, "cannot read the plan file")
    assert_refused(["apply", str(tmp_path / "none.json")], capsys, monkeypatch, tmp_path, "no such plan file")


def test_apply_names_the_model_it_was_given(tmp_path, capsys, monkeypatch, plan_json):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan_json))
    args = ["apply", str(path), "--model", "resnet34", "--out", str(tmp_path / "p.pt")]
    line = assert_refused(args, capsys, monkeypatch, tmp_path, "'resnet34' gives", "made for another model")
    assert "'resnet18' (fingerprint" in line


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'{"no_such_layer": 8}', "widths name 'no_such_layer', which is not a layer of resnet18"),
        (b'{"": 8}', "which is not a layer"),
        (b"\xff\xfe\x00\x01", "not JSON text"),
        (b"[" * 100000, "not JSON text"),
        (b'{"layer1.0.conv1": true}', "must be a positive whole number"),
    ],
)
def test_bad_width_files_are_one_line(tmp_path, capsys, monkeypatch, content, needle):
    path = tmp_path / "widths.json"
    path.write_bytes(content)
    args = ["snap", str(path), "--model", "resnet18", *PLAN_ARGS, "--out", str(tmp_path / "s.json")]
    assert_refused(args, capsys, monkeypatch, tmp_path, needle)


@pytest.mark.parametrize("budget", ["nan", "inf", "infms", "-1us", "1e400", "0", ""])
def test_bad_budgets_are_one_line(tmp_path, capsys, monkeypatch, budget):
    args = ["plan", "resnet18", *PLAN_ARGS, "--budget", budget, "--out", str(tmp_path / "plan.json")]
    assert_refused(args, capsys, monkeypatch, tmp_path, "--budget")


def test_plan_equals_its_pruned_model_through_concatenations():
    """squeezenet1_0 concatenates two expand convs into every fire output: the next squeeze conv reads the
    sum of both widths (before the fix the planner priced it with the first branch's ratio only)."""
    plan = make_plan("squeezenet1_0", "t4", "0.8", 32, input_shape=(3, 64, 64))
    ratio = {g.name: g.width / g.full_width for g in plan.groups}
    fires = [n.removesuffix(".expand1x1") for n in ratio if n.endswith(".expand1x1")]
    assert any(ratio[f + ".expand1x1"] != ratio[f + ".expand3x3"] for f in fires)  # branches pruned unequally
    applied = apply_plan(plan)
    assert applied.predicted_us == pytest.approx(plan.planned_latency_us, rel=1e-9)
    assert plan.planned_latency_us <= plan.budget_us


def test_memory_bound_stops_a_growing_block():
    hoard = []
    start = time.perf_counter()
    with pytest.raises(GroupsTooLarge, match="grew past 64 MiB"), memory_bound(64, "hoarder"):
        while time.perf_counter() - start < 20:
            hoard.append([object() for _ in range(10000)])
    hoard.clear()


def test_a_model_torch_pruning_cannot_trace_is_one_line(tmp_path, capsys, monkeypatch):
    args = ["plan", "shufflenet_v2_x0_5", *PLAN_ARGS, "--out", str(tmp_path / "plan.json")]
    assert_refused(args, capsys, monkeypatch, tmp_path, "Torch-Pruning cannot trace", "ZeroDivisionError")


def test_plan_that_its_pruned_model_contradicts_is_not_written(tmp_path, capsys, monkeypatch):
    """`wavecut plan` prunes a copy with its plan before writing it; a disagreement is one line, no file."""
    import planner.apply

    real = planner.apply.apply_plan

    def off_by_ten_percent(plan, weights=None, **options):
        applied = real(plan, weights, **options)
        return dataclasses.replace(applied, predicted_us=applied.predicted_us * 1.1)

    monkeypatch.setattr(planner.apply, "apply_plan", off_by_ten_percent)
    args = ["plan", "resnet18", *PLAN_ARGS, "--out", str(tmp_path / "plan.json")]
    assert_refused(args, capsys, monkeypatch, tmp_path, "internal check failed", "no plan written")
