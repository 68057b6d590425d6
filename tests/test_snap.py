"""wavecut snap: widths from other pruners moved onto step edges."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from gpusim.errors import WavecutError
from planner.allocate import EPS_US, uniform_widths
from planner.plan import make_snap, prepare, problem_for
from planner.snap import snap, widths_from_mapping
from typer.testing import CliRunner

from wavecut.cli import app


@pytest.fixture(scope="module")
def setting():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prep = prepare("resnet18", (3, 64, 64))
    return prep, problem_for(prep, "a100", 32)


def test_mapping_by_layer_or_group(setting) -> None:
    prep, _ = setting
    widths, notes = widths_from_mapping(prep.groups, {"layer1.0.conv2": 40, "layer2.0.conv1": 100, "fc": 10})
    names = [g.name for g in prep.groups]
    assert widths[names.index("conv1")] == 40  # layer1.0.conv2 writes the layer1 residual stream
    assert widths[names.index("layer2.0.conv1")] == 100
    assert notes == ["fc: not a prunable layer; ignored"]
    with pytest.raises(WavecutError, match="share channel group"):
        widths_from_mapping(prep.groups, {"conv1": 40, "layer1.1.conv2": 48})


def test_snapped_groups_sit_on_right_edges(setting) -> None:
    prep, problem = setting
    start = uniform_widths(problem, 0.55)
    snapped, moves = snap(problem, start, names=[g.name for g in prep.groups])
    assert moves and all(m.after != m.before for m in moves)
    latency_before, latency_after = problem.model.latencies([start, snapped])
    assert latency_after <= latency_before
    for g, allowed in enumerate(problem.allowed):
        assert snapped[g] in allowed
        wider = [w for w in allowed if w > snapped[g]]
        if wider:  # no free channels left: one aligned step more costs latency
            table = problem.model.group_tables([(g, [int(snapped[g]), wider[0]])], snapped)[0]
            assert table[1] > table[0] + EPS_US


def test_snap_plan_records_moves_and_totals(setting) -> None:
    prep, problem = setting
    mapping = {g.name: int(w) for g, w in zip(prep.groups, uniform_widths(problem, 0.5))}
    plan, _ = make_snap(prep, problem, mapping)
    before, after = plan.comparison
    assert plan.kind == "snap" and after.latency_us == pytest.approx(plan.planned_latency_us)
    assert after.latency_us <= before.latency_us
    assert {m.group for m in plan.moves} <= {g.name for g in prep.groups}
    assert np.all([g.width in a for g, a in zip(plan.groups, problem.allowed)])


def test_cli_snap_prints_moves(tmp_path) -> None:
    widths = tmp_path / "tp.json"
    widths.write_text(json.dumps({"conv1": 50, "layer3.0.conv1": 100}))
    result = CliRunner().invoke(app, ["snap", str(widths), "--model", "resnet18", "--gpu", "a100", "--batch", "32",
                                      "--input", "3x64x64", "--out", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert "conv1" in result.stdout and "latency" in result.stdout and "channels" in result.stdout
