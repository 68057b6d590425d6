"""wavecut snap: widths from other pruners moved onto step edges."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from gpusim.errors import WavecutError
from planner.allocate import EPS_US, uniform_widths
from planner.plan import make_snap, prepare, problem_for
from planner.snap import idle_tail_us, removable_idle_tail_us, snap, wasted_tails, widths_from_mapping
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


def test_snap_drops_to_wave_edges_and_removes_idle_tail(setting) -> None:
    prep, _ = setting
    problem = problem_for(prep, "t4", 32)
    start = uniform_widths(problem, 0.45)
    assert wasted_tails(problem, start)
    snapped, moves = snap(problem, start, names=[g.name for g in prep.groups])
    assert all(m.before - m.after <= max(8, 0.25 * m.before) for m in moves)  # bounded reach
    before, after = problem.model.latencies([start, snapped])
    assert after < 0.97 * before


def test_snap_reaches_wave_edges_in_fp32() -> None:
    """Strict fp32 (CUDA cores; plain fp32 runs TF32 convs on Orin) has no alignment: snap still looks a quarter of the width down (not one or two channels), reaches
    wave edges and removes most of the multi-wave idle tail (VGG-11, Orin, batch 8, uniform keep 0.3)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        problem = problem_for(prepare("vgg11", (3, 64, 64)), "orin", 8, "fp32-strict")
    start = uniform_widths(problem, 0.3)
    snapped, moves = snap(problem, start)
    before, after = problem.model.latencies([start, snapped])
    assert after < 0.8 * before and max(int(d) for d in start - snapped) > 2
    assert any("wave edge" in m.reason for m in moves)
    # break-even (default threshold 1): the importance kept per microsecond does not fall
    assert problem.importance(snapped) / after >= problem.importance(start) / before
    cautious, _ = snap(problem, start, 0.5)  # half the average price: less latency saved for less importance
    assert problem.importance(cautious) > 0.9 * problem.importance(start)
    assert problem.model.latency(cautious) < 0.85 * before
    assert idle_tail_us(problem, snapped) < 0.5 * idle_tail_us(problem, start)
    removable = removable_idle_tail_us(problem, start)
    assert 0 < removable <= idle_tail_us(problem, start) + 1e-9
    assert idle_tail_us(problem, start) - idle_tail_us(problem, snapped) > 0.5 * removable


def test_removable_idle_tail_is_what_one_group_within_reach_removes(setting) -> None:
    """Per op: its idle tail less the least one of its groups reaches within snap's reach, summed over ops."""
    from gpusim.predict import launch_overhead_us
    from planner.snap import _op_idle, reach

    prep, _ = setting
    problem = problem_for(prep, "t4", 64)  # batch 64: at 32 only streaming kernels' tails (never idle) move
    widths = uniform_widths(problem, 0.45)
    count = len(problem.model.base_ops)
    overhead = launch_overhead_us(problem.model.spec)
    now = _op_idle(problem.model.predict(widths).launches, count, overhead)
    least = now.copy()
    for g, allowed in enumerate(problem.allowed):
        for v in allowed:
            if len(allowed) > 1 and v != widths[g] and abs(v - widths[g]) <= reach(problem, int(widths[g])):
                moved = widths.copy()
                moved[g] = v
                idle = _op_idle(problem.model.predict(moved).launches, count, overhead)
                ops = problem.model.ops_of[g]
                least[ops] = np.minimum(least[ops], idle[ops])
    expected = float(np.clip(now - least, 0, None).sum())
    assert removable_idle_tail_us(problem, widths) == pytest.approx(expected, rel=1e-9)
    assert 0 < expected <= now.sum() + 1e-9
    assert idle_tail_us(problem, widths) == pytest.approx(now.sum())
    # the report's largest tails out of reach: the same per-op arrays, largest idle - removable first
    from planner.snap import tail_report

    left = np.clip(now - np.clip(now - least, 0, None), 0, None)
    report = tail_report(problem, widths, most=2)
    assert report.removable_us == removable_idle_tail_us(problem, widths)
    tails = report.largest_left
    order = [i for i in np.argsort(-left, kind="stable") if left[i] > 1e-9][:2]
    main = problem.model.predict(widths).main_launches()
    assert [t.op for t in tails] == [main[i].op_name for i in order]
    assert [t.idle_us - t.removable_us for t in tails] == pytest.approx([left[i] for i in order])
    assert all(t.waves >= 2 and t.tail_fill < 1 for t in tails)


def test_trade_spends_the_freed_latency_on_importance(setting) -> None:
    prep, problem = setting
    start = uniform_widths(problem, 0.3)
    snapped, _ = snap(problem, start)
    traded, moves = snap(problem, start, names=[g.name for g in prep.groups], trade=True)
    before, after, after_trade = problem.model.latencies([start, snapped, traded])
    assert after < before and after_trade <= before
    assert problem.importance(snapped) < problem.importance(start) < problem.importance(traded)
    assert any(m.reason.startswith("grown with latency freed elsewhere") for m in moves)


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
    result = CliRunner().invoke(
        app,
        [
            "snap",
            str(widths),
            "--model",
            "resnet18",
            "--gpu",
            "a100",
            "--batch",
            "32",
            "--input",
            "3x64x64",
            "--out",
            str(tmp_path / "s.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "conv1" in result.stdout and "latency" in result.stdout and "channels" in result.stdout
