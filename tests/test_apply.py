"""wavecut apply: the pruned model keeps its output shape and its predicted latency equals the plan's."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from typer.testing import CliRunner

from gpusim.errors import WavecutError
from planner.apply import apply_plan
from planner.plan import make_plan
from planner.plan_model import Plan
from wavecut.cli import app

SHAPE = (3, 64, 64)


def _plan(model: str, gpu: str = "t4", budget: str = "0.8", batch: int = 8, mode: str = "fused") -> Plan:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_plan(model, gpu, budget, batch, mode=mode, input_shape=SHAPE)


@pytest.mark.parametrize("model,mode", [("resnet18", "fused"), ("mobilenet_v2", "eager")])
def test_apply_keeps_shape_and_latency(tmp_path, model: str, mode: str) -> None:
    plan = _plan(model, budget="0.9", mode=mode)
    assert any(g.width < g.full_width for g in plan.groups)
    applied = apply_plan(plan, out=tmp_path / "pruned.pt")
    assert applied.output_shape == (1, 1000)
    assert applied.parameters_after < applied.parameters_before
    assert applied.predicted_us == pytest.approx(plan.planned_latency_us, rel=1e-9)
    saved = torch.load(tmp_path / "pruned.pt", weights_only=False)
    assert saved(torch.zeros(2, *SHAPE)).shape == (2, 1000)


def test_plan_round_trips_through_json(tmp_path) -> None:
    plan = _plan("resnet18")
    plan.save(tmp_path / "p.json")
    assert Plan.load(tmp_path / "p.json") == plan


def test_plan_for_another_model_is_refused(tmp_path) -> None:
    plan = _plan("resnet18")
    with pytest.raises(WavecutError, match="plan was made for another model"):
        apply_plan(plan, model_spec="resnet34")
    with pytest.raises(WavecutError, match="plan was made for input 3x64x64, not 3x32x32"):
        apply_plan(plan, input_shape=(3, 32, 32))
    stale = plan.model_copy(update={"gpu_spec_hash": "0" * 16})
    with pytest.raises(WavecutError, match="another version of the GPU spec"):
        apply_plan(stale)


def test_cli_apply_then_predict_reproduces_the_plan(tmp_path) -> None:
    plan_file, pruned = tmp_path / "plan.json", tmp_path / "pruned.pt"
    runner = CliRunner()
    made = runner.invoke(
        app,
        [
            "plan",
            "resnet18",
            "--gpu",
            "a100",
            "--budget",
            "0.7",
            "--batch",
            "32",
            "--input",
            "3x64x64",
            "--out",
            str(plan_file),
            "--json",
        ],
    )
    assert made.exit_code == 0, made.output
    data = json.loads(made.stdout)
    assert data["planned_latency_us"] <= data["budget_us"] < data["baseline_latency_us"]
    assert {"name", "full_width", "width"} <= set(data["groups"][0])
    applied = runner.invoke(app, ["apply", str(plan_file), "--out", str(pruned), "--json"])
    assert applied.exit_code == 0, applied.output
    report = json.loads(applied.stdout)
    assert report["matches_plan"] and report["output_shape"] == [1, 1000]
    predicted = runner.invoke(
        app,
        [
            "predict",
            str(pruned),
            "--gpu",
            "a100",
            "--batch",
            "32",
            "--input",
            "3x64x64",
            "--json",
            "--trust-model-file",
        ],
    )
    assert json.loads(predicted.stdout)["total_us"] == pytest.approx(report["plan_latency_us"], rel=1e-9)


def test_functionality_plans_fold_pruned_filters_into_kept_partners() -> None:
    """Compensation keeps the pruned model's outputs closer to the unpruned model's than plain removal."""
    from planner.apply import prune
    from planner.importance.signatures import synthetic_batch
    from planner.plan import load_weights_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = make_plan("vgg11", "t4", "0.7", 8, importance="functionality", input_shape=SHAPE)
    batch = synthetic_batch(SHAPE, 8)
    errors = []
    for calibration in (None, batch):
        model, _ = load_weights_model("vgg11", None)
        with torch.no_grad():
            reference = model(batch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prune(model, plan.groups, torch.zeros(1, *SHAPE), calibration)
        with torch.no_grad():
            errors.append(float(((model(batch) - reference) ** 2).mean()))
    assert errors[1] < 0.5 * errors[0]


def test_apply_recalibrates_batchnorm_on_calibration_data_deterministically(tmp_path) -> None:
    """With --calibration-data (a .pt tensor), every BatchNorm's running mean is the mean of its input over that
    batch (one batch: the cumulative average is exact), and two runs give the same model."""
    plan = _plan("resnet18", budget="0.8")
    data = tmp_path / "calib.pt"
    torch.save(torch.randn(6, *SHAPE, generator=torch.Generator().manual_seed(1)), data)
    first = apply_plan(plan, calibration_data=str(data))
    second = apply_plan(plan, calibration_data=str(data))
    assert first.calibration == str(data) and first.compensated and first.bn_recalibrated == 20
    for (k, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), k
    with torch.no_grad():
        bn_input = first.model.conv1(torch.load(data))
    assert torch.allclose(first.model.bn1.running_mean, bn_input.mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(first.model.bn1.running_var, bn_input.var(dim=(0, 2, 3)), rtol=1e-4)
    assert first.predicted_us == pytest.approx(plan.planned_latency_us, rel=1e-9)


def test_bad_calibration_data_is_one_line(tmp_path) -> None:
    bad = tmp_path / "bad.pt"
    torch.save(torch.zeros(4, 3, 8, 8), bad)
    with pytest.raises(WavecutError, match=r"--calibration-data: .*expected a tensor of shape \(N, 3, 64, 64\)"):
        apply_plan(_plan("resnet18"), calibration_data=str(bad))
    with pytest.raises(WavecutError, match="no such file or folder"):
        apply_plan(_plan("resnet18"), calibration_data=str(tmp_path / "missing"))
