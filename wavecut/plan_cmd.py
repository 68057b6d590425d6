"""`wavecut plan`, `wavecut snap` and `wavecut apply`: channel widths under a latency budget, and pruning with them."""

from __future__ import annotations

import warnings
from pathlib import Path

import typer
from rich.table import Table

from gpusim.eager import PLAIN_PRECISIONS
from planner.defaults import (
    DEFAULT_BATCH,
    DEFAULT_DTYPE,
    DEFAULT_GPU,
    DEFAULT_INPUT,
    DEFAULT_MODE,
    DEFAULT_MODEL,
    DEFAULT_SNAP_THRESHOLD,
)
from wavecut.output import console, print_json
from wavecut.predict_cmd import TRUST_HELP

INPUT_HELP = "input shape without batch, e.g. 3x224x224"
CALIBRATION_HELP = (
    "calibration inputs: a folder of images, a .pt tensor (or dict with x, y); default: 8 synthetic images"
)


def _quiet(fn, *args):
    """fn(*args) without the tracing and Torch-Pruning warnings (`wavecut predict` shows those)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


def plan(
    model: str = typer.Argument(DEFAULT_MODEL, help="torchvision name, package.module:factory, or a torch.save file"),
    gpu: str = typer.Option(DEFAULT_GPU, help="GPU name, alias or spec file"),
    budget: str = typer.Option("0.7", help="fraction of the unpruned predicted latency (0.7) or a time (2.5ms, 800us)"),
    batch: int = typer.Option(DEFAULT_BATCH, help="batch size"),
    dtype: str = typer.Option(DEFAULT_DTYPE, help=", ".join(PLAIN_PRECISIONS)),
    mode: str = typer.Option(DEFAULT_MODE, help="eager or fused"),
    input_shape: str = typer.Option("x".join(map(str, DEFAULT_INPUT)), "--input", help=INPUT_HELP),
    importance: str = typer.Option(
        "magnitude", help="magnitude (scaled to Taylor sensitivity), taylor, sensitivity or functionality"
    ),
    weights: Path = typer.Option(None, help="state_dict (or saved model) to load before ranking channels"),
    calibration_data: Path = typer.Option(None, help=CALIBRATION_HELP),
    method: str = typer.Option("greedy", help="greedy, or exact (a MILP over the groups' candidate widths)"),
    out: Path = typer.Option(Path("plan.json"), help="plan file to write"),
    as_json: bool = typer.Option(False, "--json", help="print the plan as one JSON object"),
    trust: bool = typer.Option(False, "--trust-model-file", help=TRUST_HELP),
    check: bool = typer.Option(True, help="prune a copy with the plan and check it predicts the plan's latency"),
) -> None:
    """Plan channel widths that keep the most importance within a latency budget on a GPU."""
    from planner.apply import verify_plan
    from planner.plan import make_plan
    from wavecut.predict_cmd import parse_input, trust_model_files

    trust_model_files(trust)

    result = _quiet(
        make_plan,
        model,
        gpu,
        budget,
        batch,
        dtype,
        mode,
        parse_input(input_shape),
        importance,
        str(weights) if weights else None,
        None,
        str(calibration_data) if calibration_data else None,
        method,
    )
    if check:
        _quiet(verify_plan, result, str(weights) if weights else None)
    if result.importance_kept == 1.0 and result.channels_kept < result.channels_full:  # what it drops scores 0
        typer.echo(
            f"wavecut: warning: the channels this plan drops from {model} score 0 importance with these weights (a "
            "classifier that starts at zero, as torchvision's ViT's does, passes no gradient): ties keep the most "
            "channels the budget allows; pass --weights for a plan by importance",
            err=True,
        )
    result.save(out)
    if as_json:
        print_json(result.model_dump())
        return
    print_plan(result)
    console.print(f"wrote {out}")


def quickstart(
    model: str = typer.Argument(DEFAULT_MODEL, help="torchvision name, package.module:factory, or a torch.save file"),
    gpu: str = typer.Option(DEFAULT_GPU, help="GPU name, alias or spec file"),
    budget: str = typer.Option("0.7", help="fraction of the unpruned predicted latency or a time"),
    batch: int = typer.Option(32, help="batch size (32: busy enough that channel widths, not launches, set latency)"),
) -> None:
    """The main job on the embedded default: plan ResNet-50 at 70% of its latency on an A100 (fp16, batch 32,
    fused) and print the comparison with uniform pruning and the per-layer waves."""
    from planner.plan import make_plan

    print_plan(_quiet(make_plan, model, gpu, budget, batch, DEFAULT_DTYPE, DEFAULT_MODE, DEFAULT_INPUT), layers=True)


def print_plan(result, layers: bool = False) -> None:
    """Tables of a plan: the comparison with uniform pruning, the groups and (optionally) the per-layer waves."""
    title = (
        f"{result.model} on {result.gpu}, {result.dtype}, batch {result.batch}, {result.mode}, "
        f"input {'x'.join(map(str, result.input_shape))}"
    )
    console.print(
        f"[bold]{title}[/bold]: unpruned {result.baseline_latency_us:.1f} us, budget "
        f"{result.budget_us:.1f} us ({result.budget}), planned {result.planned_latency_us:.1f} us "
        f"in {result.planning_s:.1f} s"
    )
    table = Table(title="at the same budget")
    for col in ("method", "keep ratio", "latency us", "channels", "importance kept"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for row in result.comparison:
        if row.latency_us is None:
            table.add_row(row.method, "-", "cannot meet the budget", "-", "-")
        else:
            table.add_row(
                row.method,
                "-" if row.keep_ratio is None else f"{row.keep_ratio:.2f}",
                f"{row.latency_us:.1f}",
                str(row.channels),
                f"{row.importance:.1%}",
            )
    console.print(table)
    groups = Table(title="channel groups")
    for col in ("group", "layers", "width", "of", "importance kept", "note"):
        groups.add_column(col, justify="left" if col in ("group", "note") else "right")
    for g in result.groups:
        groups.add_row(
            g.name,
            str(len(g.producers) + len(g.consumers)),
            str(g.width),
            str(g.full_width),
            f"{g.importance_kept:.1%}",
            g.locked,
        )
    console.print(groups)
    if layers:
        print_layers(result)


def print_layers(result) -> None:
    """Per-layer latency and waves before and after the plan."""
    table = Table(title="per-layer latency and waves (main kernel)")
    for col in ("layer", "op", "us before", "us after", "waves", "tail fill"):
        table.add_column(col, justify="left" if col in ("layer", "op") else "right")
    for layer in result.layers:
        table.add_row(
            layer.name,
            layer.op,
            f"{layer.before_us:.1f}",
            f"{layer.after_us:.1f}",
            f"{layer.waves_before} -> {layer.waves_after}",
            f"{layer.tail_before:.2f} -> {layer.tail_after:.2f}",
        )
    console.print(table)


def snap(
    widths: Path = typer.Argument(..., help="a plan file, or a JSON object mapping layer or group names to widths"),
    model: str = typer.Option(DEFAULT_MODEL, help="the model the widths are for (ignored for a plan file)"),
    gpu: str = typer.Option(DEFAULT_GPU, help="GPU name, alias or spec file (ignored for a plan file)"),
    batch: int = typer.Option(DEFAULT_BATCH, help="batch size (ignored for a plan file)"),
    dtype: str = typer.Option(DEFAULT_DTYPE, help="data type (ignored for a plan file)"),
    mode: str = typer.Option(DEFAULT_MODE, help="eager or fused (ignored for a plan file)"),
    input_shape: str = typer.Option("x".join(map(str, DEFAULT_INPUT)), "--input", help=INPUT_HELP),
    importance: str = typer.Option(
        "magnitude", help="magnitude, taylor, sensitivity or functionality (ignored for a plan file)"
    ),
    weights: Path = typer.Option(None, help="state_dict to load before ranking (ignored for a plan file)"),
    calibration_data: Path = typer.Option(None, help=CALIBRATION_HELP),
    threshold: float = typer.Option(
        DEFAULT_SNAP_THRESHOLD,
        help="take a drop to a step or wave edge when the importance it loses per microsecond saved is at most "
        "this fraction of the input's average importance per microsecond",
    ),
    trade: bool = typer.Option(False, help="spend the latency snapping frees on growing other groups to step edges"),
    out: Path = typer.Option(Path("snapped.json"), help="snapped plan file to write"),
    as_json: bool = typer.Option(False, "--json", help="print the snapped plan as one JSON object"),
    trust: bool = typer.Option(False, "--trust-model-file", help=TRUST_HELP),
) -> None:
    """Move widths from any pruner onto latency step edges: drop partly used waves, fill free channels."""
    import numpy as np

    from planner.plan import make_snap, prepare, problem_for, read_widths
    from planner.snap import idle_tail_us, removable_idle_tail_us, tail_report, widths_from_mapping
    from wavecut.predict_cmd import parse_input, trust_model_files

    trust_model_files(trust)

    source, mapping = read_widths(widths)
    if source is not None:
        model, gpu, batch, dtype, mode = source.model, source.gpu_spec, source.batch, source.dtype, source.mode
        input_shape, importance = "x".join(map(str, source.input_shape)), source.importance
        weights = Path(source.weights) if source.weights else None
    prep = _quiet(
        prepare,
        model,
        parse_input(input_shape),
        importance,
        str(weights) if weights else None,
        str(calibration_data) if calibration_data else None,
    )
    problem = problem_for(prep, gpu, batch, dtype, mode)
    result, notes = make_snap(prep, problem, mapping, threshold, trade)
    result.save(out)
    if as_json:
        print_json(result.model_dump())
        return
    for note in notes:
        console.print(f"note: {note}")
    table = Table(title=f"snapped {widths} for {result.model} on {result.gpu}, {result.dtype}, batch {result.batch}")
    for col in ("group", "width", "latency change us", "why"):
        table.add_column(col, justify="left" if col in ("group", "why") else "right")
    for m in result.moves:
        table.add_row(m.group, f"{m.before} -> {m.after}", f"{m.latency_change_us:+.1f}", m.reason)
    console.print(table)
    before, after = result.comparison
    start, snapped = widths_from_mapping(prep.groups, mapping)[0], np.array([g.width for g in result.groups])
    idle_before, idle_after = idle_tail_us(problem, start), idle_tail_us(problem, snapped)
    report = tail_report(problem, snapped)  # one reach scan gives the snapped side's removable part and its rest
    removable = removable_idle_tail_us(problem, start), report.removable_us
    console.print(
        f"latency {before.latency_us:.1f} -> {after.latency_us:.1f} us "
        f"({after.latency_us / before.latency_us - 1:+.1%}); channels {before.channels} -> {after.channels} "
        f"({after.channels - before.channels:+d}); importance kept {before.importance:.1%} -> "
        f"{after.importance:.1%}; multi-wave idle tail {idle_before:.1f} -> {idle_after:.1f} us, of which "
        f"channel-removable (one group's width within reach removes it) {removable[0]:.1f} -> {removable[1]:.1f} us"
    )
    left = report.largest_left
    if left:
        console.print(
            "largest idle tails no width within reach removes: "
            + "; ".join(
                f"{t.op} {t.idle_us - t.removable_us:.1f} us (grid {t.grid}, {t.waves} waves, last {t.tail_fill:.0%} full)"
                for t in left
            )
            + ": their wave count is set by batch x spatial tiles or by a width out of reach"
        )
    console.print(f"wrote {out}")


def apply(
    plan_file: Path = typer.Argument(..., metavar="PLAN", help="plan file from wavecut plan or snap"),
    weights: Path = typer.Option(None, help="the state_dict the plan was made with"),
    model: str = typer.Option(None, help="model to prune (default: the plan's); must be the plan's architecture"),
    input_shape: str = typer.Option(None, "--input", help="check the plan was made for this input shape"),
    out: Path = typer.Option(Path("pruned.pt"), help="where to save the pruned model (torch.save)"),
    calibration_data: Path = typer.Option(None, help=CALIBRATION_HELP),
    compensate: bool = typer.Option(True, help="fold each removed channel into its best kept partner first"),
    bn_recalibration: bool = typer.Option(
        None,
        "--bn-recalibration/--no-bn-recalibration",
        help="re-estimate BatchNorm statistics on the calibration batch (default: only with --calibration-data)",
    ),
    seed: int = typer.Option(0, help="seed of the synthetic calibration batch"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    trust: bool = typer.Option(False, "--trust-model-file", help=TRUST_HELP),
) -> None:
    """Remove the plan's channels from the PyTorch model, check it, save it and predict its latency."""
    from planner.apply import MATCH_TOLERANCE, apply_plan
    from planner.plan_model import Plan
    from wavecut.predict_cmd import parse_input, trust_model_files

    trust_model_files(trust)

    plan_obj = Plan.load(plan_file)
    shape = parse_input(input_shape) if input_shape else None
    applied = apply_plan(
        plan_obj,
        str(weights) if weights else None,
        out,
        model,
        shape,
        str(calibration_data) if calibration_data else None,
        compensate,
        bn_recalibration,
        seed,
    )
    report = {
        "model": plan_obj.model,
        "out": str(out),
        "output_shape": list(applied.output_shape),
        "parameters_before": applied.parameters_before,
        "parameters_after": applied.parameters_after,
        "predicted_latency_us": applied.predicted_us,
        "plan_latency_us": plan_obj.planned_latency_us,
        "matches_plan": abs(applied.predicted_us - plan_obj.planned_latency_us)
        <= MATCH_TOLERANCE * plan_obj.planned_latency_us,
        "calibration": applied.calibration,
        "compensated": applied.compensated,
        "bn_recalibrated_layers": applied.bn_recalibrated,
    }
    if as_json:
        print_json(report)
        return
    console.print(
        f"pruned {plan_obj.model}: parameters {applied.parameters_before:,} -> {applied.parameters_after:,}, "
        f"output shape {tuple(applied.output_shape)} unchanged"
    )
    console.print(
        f"predicted {applied.predicted_us:.1f} us on {plan_obj.gpu} "
        f"(plan: {plan_obj.planned_latency_us:.1f} us"
        f"{', equal' if report['matches_plan'] else ', DIFFERENT: please report this'}); wrote {out}"
    )
    console.print(
        f"calibration: {applied.calibration}"
        f"{' (synthetic images, not real data)' if applied.calibration == 'synthetic' else ''}; "
        f"compensation {'on' if applied.compensated else 'off'}; "
        f"BatchNorm statistics re-estimated in {applied.bn_recalibrated} layers"
    )
