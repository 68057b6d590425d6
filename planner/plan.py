"""Planning sessions: load and analyse a model once, price it for a GPU setting, and turn widths into a Plan."""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import gpusim
from gpusim.errors import WavecutError
from planner.allocate import (
    Problem,
    alternatives,
    cumulative_importance,
    greedy,
    grow_to_edges,
    uniform_at_budget,
    unreachable,
)
from planner.calibration import Calibration, load_calibration
from planner.candidates import MIN_CHANNELS, MIN_FRACTION, WidthModel, alignment, group_widths
from planner.defaults import DEFAULT_BATCH, DEFAULT_DTYPE, DEFAULT_GPU, DEFAULT_INPUT, DEFAULT_MODE, check_mode
from planner.groups import ChannelGroup, find_groups
from planner.heads import head_magnitude, head_taylor
from planner.models import load_model, load_torch_file
from planner.network import Network
from planner.plan_model import Baseline, GroupWidth, LayerLatency, Plan, wavecut_version
from planner.snap import DEFAULT_THRESHOLD, snap, widths_from_mapping

IMPORTANCE_METHODS = ("magnitude", "taylor", "sensitivity", "functionality")
# Filter L1 within a group, each group scaled to its Taylor sensitivity: the most accurate at equal latency in
# benchmarks.planner_accuracy (Taylor's own per-channel order is noisy on a converged model; docs/planner.md)
DEFAULT_IMPORTANCE = "magnitude"
# The channel order within a group that `sensitivity` measures its curves along (and apply keeps the top of):
# the coupled group L2 norm, BatchNorm scale and consumers included. On the digits CNN it gave a lower
# calibration loss than filter L1, Taylor or the BatchNorm scale at the same widths (docs/planner.md)
SENSITIVITY_RANKING = "group-l2"
SEED = 0  # models built without weights are initialised from this seed, so plan and apply see the same weights
ROUND_TO = 8  # the rounded uniform baseline


@dataclass
class PreparedModel:
    """A loaded model with its channel groups, per-channel importance and traced op graph."""

    spec: str
    model: nn.Module
    input_shape: tuple[int, ...]
    groups: list[ChannelGroup]
    scores: list[np.ndarray]  # per group, one score per channel (higher = keep)
    network: Network
    importance: str
    weights: str | None
    weights_sha256: str | None
    calibration: str = "synthetic"  # where the calibration batch came from
    joint_loss: Callable[[np.ndarray], float] | None = None  # measured importance: loss of widths, all groups cut


def load_weights_model(spec: str, weights: str | None) -> tuple[nn.Module, str | None]:
    """The model `spec` names, seeded, with `weights` (a state_dict or saved model file) loaded; and their sha256."""
    torch.manual_seed(SEED)
    model = load_model(spec)
    if weights is None:
        return model, None
    path = Path(weights)
    state = load_torch_file(path, "--weights file")  # weights only unless --trust-model-file
    try:
        model.load_state_dict(state.state_dict() if isinstance(state, nn.Module) else state)
    except (RuntimeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise WavecutError(f"--weights: {weights} does not fit {spec} ({str(exc).splitlines()[0]})") from None
    return model.eval(), hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(model: nn.Module) -> str:
    """A hash of the model's parameter and buffer names and shapes (its architecture, not its values)."""
    text = ";".join(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def prepare(
    spec: str,
    input_shape: Sequence[int] = DEFAULT_INPUT,
    importance: str = DEFAULT_IMPORTANCE,
    weights: str | None = None,
    calibration_data: str | None = None,
) -> PreparedModel:
    """Load `spec`, find its channel groups, rank every group's channels and trace it.

    Scores are comparable across groups: Taylor scores are loss changes already; magnitude and functionality
    scores are scaled, per group, to sum to the group's Taylor sensitivity (the loss change of removing all
    its channels, to first order), so their ranking within a group is kept and a group's total is what its
    removal costs; sensitivity scores follow each group's measured calibration-loss curve through the
    no-retraining path (planner.importance.sensitivity), on half the calibration batch, and the other half
    measures width vectors jointly (`PreparedModel.joint_loss`, used by `allocate`). The calibration batch
    (`calibration_data`, default synthetic) drives the Taylor gradients and the measured losses."""
    if importance not in IMPORTANCE_METHODS:
        raise WavecutError(f"--importance: unknown method {importance!r}; allowed: {', '.join(IMPORTANCE_METHODS)}")
    model, digest = load_weights_model(spec, weights)
    calibration = load_calibration(calibration_data, tuple(input_shape))
    return prepare_module(model, spec, input_shape, importance, calibration, weights, digest)


def prepare_module(
    model: nn.Module,
    spec: str,
    input_shape: Sequence[int],
    importance: str,
    calibration: Calibration,
    weights: str | None = None,
    digest: str | None = None,
) -> PreparedModel:
    """`prepare` for a model already loaded (`spec` names it in the plan), with its calibration batch."""
    from planner.importance import rank_channels, taylor_for
    from planner.importance.sensitivity import measured_scores

    shape = tuple(input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Torch-Pruning's notes on bare parameters; tracing notes repeat in predict
        try:
            groups = find_groups(model, torch.zeros(1, *shape))
        except (RuntimeError, TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            raise WavecutError(
                f"cannot plan {spec}: Torch-Pruning cannot find its channel groups on input "
                f"{'x'.join(map(str, shape))} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
        network = Network.from_model(model, shape, spec)
    taylor = taylor_for(model, calibration.x, calibration.labels)
    curves, selection = _halves(calibration) if importance == "sensitivity" else (None, None)
    measured = _measured_loss(model, curves) if curves is not None else None
    scores, first_order = [], []
    for g in groups:
        if not g.prunable:
            scores.append(np.ones(g.full_width))
            first_order.append(scores[-1])
            continue
        if g.head_dim:  # whole heads: Taylor of zeroing the head's v rows, magnitude for every other criterion
            module = model.get_submodule(g.name)
            sensitivity = head_taylor(module, taylor.parameter_terms())
            raw = sensitivity if importance == "taylor" else head_magnitude(module)
            scores.append(comparable(raw, float(sensitivity.sum())))
            continue
        sensitivity = taylor(g.tp_group).double().numpy()
        if measured is not None:
            ranking = by_position(rank_channels(model, g.tp_group, SENSITIVITY_RANKING).detach().double().numpy(), g)
            step = g.channel_groups  # a grouped conv's group count: curves at whole positions

            def loss_at(w: int, g: ChannelGroup = g, r: np.ndarray = ranking, step: int = step) -> float:
                return measured([group_width(g, max(step, w - w % step), r, 0.0)])

            scores.append(by_position(measured_scores(loss_at, ranking), g))
            first_order.append(comparable(ranking, float(sensitivity.sum())))
            continue
        raw = (
            sensitivity
            if importance == "taylor"
            else rank_channels(model, g.tp_group, importance, calibration=calibration.x).detach().double().numpy()
        )
        scores.append(by_position(comparable(raw, float(sensitivity.sum())), g))
    joint_loss = _joint_loss(groups, scores, _measured_loss(model, selection)) if selection is not None else None
    return PreparedModel(
        spec, model, shape, groups, scores, network, importance, weights, digest, calibration.source, joint_loss
    )


def _halves(calibration: Calibration) -> tuple[Calibration, Calibration]:
    """The calibration batch split in two (even and odd inputs): the measured importance fits its per-group
    curves on the first and chooses among allocations on the second, so the choice is not judged on the
    inputs the curves were fitted to."""
    if len(calibration.x) < 2:
        raise WavecutError(
            f"--importance sensitivity: needs at least 2 calibration inputs, {calibration.source} has "
            f"{len(calibration.x)} (half measure the per-group curves, half choose among allocations)"
        )
    labels = calibration.labels
    return tuple(
        Calibration(calibration.x[k::2], None if labels is None else labels[k::2], calibration.source) for k in (0, 1)
    )


def _joint_loss(
    groups: list[ChannelGroup], scores: list[np.ndarray], measured: Callable[[list[GroupWidth]], float]
) -> Callable[[np.ndarray], float]:
    """`loss(widths)`: the measured loss increase with every group cut to its width (its top-scoring channels),
    remembered per width vector."""
    found: dict[tuple[int, ...], float] = {}

    def loss(widths: np.ndarray) -> float:
        key = tuple(int(w) for w in widths)
        if key not in found:
            found[key] = measured([group_width(g, w, s, 0.0) for g, w, s in zip(groups, key, scores)])
        return found[key]

    return loss


def _measured_loss(model: nn.Module, calibration: Calibration) -> Callable[[list[GroupWidth]], float]:
    """`loss(planned)`: the calibration loss increase of the model with the `planned` groups cut, through
    `wavecut apply`'s no-retraining path (compensation; BatchNorm re-estimation where the calibration data are
    real, as apply does by default), against the calibration labels or the unpruned model's predictions."""
    from planner.apply import calibration_loss

    was_training = model.training
    model.eval()
    with torch.no_grad():
        targets = calibration.labels if calibration.labels is not None else model(calibration.x).argmax(dim=1)
    model.train(was_training)
    real = calibration.source != "synthetic"
    base = calibration_loss(model, [], calibration.x, targets, real)
    return lambda planned: calibration_loss(model, planned, calibration.x, targets, real) - base


def comparable(raw: np.ndarray, sensitivity: float) -> np.ndarray:
    """Per-channel scores of one group scaled to sum to the group's sensitivity (ties to equal shares)."""
    raw = np.clip(np.asarray(raw, dtype=np.float64), 0.0, None)
    total = raw.sum()
    return raw * (sensitivity / total) if total > 0 else np.full(len(raw), sensitivity / max(len(raw), 1))


def problem_for(
    prep: PreparedModel,
    gpu: str = DEFAULT_GPU,
    batch: int = DEFAULT_BATCH,
    dtype: str = DEFAULT_DTYPE,
    mode: str = DEFAULT_MODE,
) -> Problem:
    """The allocation problem of a prepared model on one GPU, batch, dtype and mode (the precision is
    checked by WidthModel, as Network.predict checks it)."""
    check_mode(mode)
    if batch < 1:
        raise WavecutError(f"--batch: must be at least 1, got {batch}")
    model = WidthModel(prep.network, prep.groups, gpu, batch, dtype, mode)
    align = alignment(dtype)
    allowed = [group_widths(g, align) for g in prep.groups]
    cum = [
        cumulative_importance(s) if g.prunable else np.zeros(g.full_width + 1) for g, s in zip(prep.groups, prep.scores)
    ]
    return Problem(model, allowed, cum, prep.joint_loss)


def parse_budget(text: str, baseline_us: float) -> float:
    """'0.7' -> 0.7 x baseline; '2.5ms' -> 2500; '800us' -> 800 (microseconds)."""
    t = text.strip().lower()
    for suffix, scale in (("ms", 1000.0), ("us", 1.0), ("µs", 1.0)):
        if t.endswith(suffix):
            try:
                value = float(t[: -len(suffix)]) * scale
            except ValueError:
                break
            if not 0 < value < math.inf:  # also refuses nan and inf ("infms")
                break
            return value
    else:
        try:
            fraction = float(t)
        except ValueError:
            fraction = -1.0
        if 0 < fraction <= 1:
            return fraction * baseline_us
    raise WavecutError(
        f"--budget: {text!r} must be a fraction of the unpruned latency in (0, 1] (e.g. 0.7) "
        f"or a time (e.g. 2.5ms, 800us)"
    )


ALLOCATION_METHODS = ("greedy", "exact")


def allocate(problem: Problem, budget_us: float, method: str = "greedy") -> np.ndarray:
    """The widths that keep the most importance within the budget: greedy + fill + edges, or a uniform
    baseline grown to its step edges where that keeps more; or (`exact`) the MILP of planner.exact.
    With a measured importance (`problem.loss`), the allocation and its alternatives (planner.allocate,
    the uniform allocation rounded to 8 among them) are measured jointly and the lowest loss is kept (the
    allocation on ties). Raises the unreachable-budget error."""
    if method not in ALLOCATION_METHODS:
        raise WavecutError(f"--method: unknown method {method!r}; allowed: {', '.join(ALLOCATION_METHODS)}")
    rounded = uniform_at_budget(problem, budget_us, ROUND_TO)
    uniform = grow_to_edges(problem, rounded[1]) if rounded is not None else None
    if method == "exact":
        from planner.exact import exact_widths

        widths = exact_widths(problem, budget_us)
    else:
        widths = _greedy_or_uniform(problem, budget_us, uniform)
    if problem.loss is None:
        return widths
    options = alternatives(problem, budget_us, widths, uniform)
    losses = [problem.loss(w) for w in options]
    return options[int(np.argmin(losses))]


def _greedy_or_uniform(problem: Problem, budget_us: float, uniform: np.ndarray | None) -> np.ndarray:
    """The greedy's widths, `uniform` or every group at its minimum: the most importance within the budget."""
    options = [grow_to_edges(problem, greedy(problem, budget_us))]
    if uniform is not None:
        options.append(uniform)
    options.append(problem.lowest())
    latencies = problem.model.latencies(options)
    # ties in importance (channels scoring 0) go to the widths that keep the larger share of channels
    feasible = [
        (problem.importance(w), float(np.sum(w / problem.full)), -lat, i)
        for i, (w, lat) in enumerate(zip(options, latencies))
        if lat <= budget_us
    ]
    if not feasible:
        raise unreachable(problem, budget_us)
    return options[max(feasible)[3]]


def compare(problem: Problem, widths: np.ndarray, budget_us: float) -> list[Baseline]:
    """The plan against uniform pruning and uniform pruning rounded to 8, at the same budget."""
    rows = [_row(problem, "plan", None, widths)]
    for method, round_to in (("uniform", 1), (f"uniform_round{ROUND_TO}", ROUND_TO)):
        found = uniform_at_budget(problem, budget_us, round_to)
        rows.append(Baseline(method=method) if found is None else _row(problem, method, *found))
    return rows


def _row(problem: Problem, method: str, keep: float | None, widths: np.ndarray) -> Baseline:
    prunable = [len(a) > 1 for a in problem.allowed]
    return Baseline(
        method=method,
        keep_ratio=keep,
        latency_us=problem.model.latency(widths),
        channels=int(widths[prunable].sum()),
        importance=problem.importance(widths) / max(problem.importance(problem.full), 1e-12),
    )


def make_plan(
    model: str,
    gpu: str = DEFAULT_GPU,
    budget: str = "0.7",
    batch: int = DEFAULT_BATCH,
    dtype: str = DEFAULT_DTYPE,
    mode: str = DEFAULT_MODE,
    input_shape: Sequence[int] = DEFAULT_INPUT,
    importance: str = DEFAULT_IMPORTANCE,
    weights: str | None = None,
    prep: PreparedModel | None = None,
    calibration_data: str | None = None,
    method: str = "greedy",
) -> Plan:
    """Plan group widths for `model` within `budget` on `gpu` (pass `prep` to reuse a prepared model)."""
    start = time.perf_counter()
    parse_budget(budget, 1.0)  # refuse a malformed budget before the slow preparation
    prep = prep or prepare(model, input_shape, importance, weights, calibration_data)
    problem = problem_for(prep, gpu, batch, dtype, mode)
    baseline_us = problem.model.latency(problem.full)
    budget_us = parse_budget(budget, baseline_us)
    widths = allocate(problem, budget_us, method)
    comparison = compare(problem, widths, budget_us)
    return build_plan(
        prep, problem, widths, time.perf_counter() - start, budget=budget, budget_us=budget_us, comparison=comparison
    )


def by_position(scores: np.ndarray, group: ChannelGroup) -> np.ndarray:
    """For a group that feeds or leaves grouped convs (`channel_groups` g > 1), each channel's score replaced by
    the mean over the g conv groups of the scores at its position in its conv group (channels j x C/g + p, j =
    0..g-1, share position p): the planner keeps or drops whole positions. Other groups: `scores` as they are."""
    g = group.channel_groups
    if g == 1:
        return scores
    return np.tile(_position_means(scores, g), g)


def _position_means(scores: np.ndarray, channel_groups: int) -> np.ndarray:
    """Per position p of a conv group, the mean score of channels j x C/g + p over the g conv groups."""
    return np.asarray(scores, dtype=np.float64).reshape(channel_groups, -1).mean(axis=0)


def kept_indices(scores: np.ndarray, width: int, channel_groups: int = 1) -> list[int]:
    """Indices of the `width` highest-scoring channels, ascending (ties keep the lower index). With
    `channel_groups` g > 1: the width / g best positions by their mean score over the g conv groups, kept in
    every conv group (Torch-Pruning's ConvPruner keeps the group count, so each group keeps the same positions)."""
    if channel_groups == 1:
        order = np.argsort(-scores, kind="stable")
        return sorted(int(i) for i in order[:width])
    per_group = len(scores) // channel_groups
    positions = np.argsort(-_position_means(scores, channel_groups), kind="stable")
    return sorted(j * per_group + int(p) for j in range(channel_groups) for p in positions[: width // channel_groups])


def group_width(group: ChannelGroup, width: int, scores: np.ndarray, importance_kept: float) -> GroupWidth:
    """A plan's entry for `group` at `width`: the `width` highest-scoring channels kept."""
    return GroupWidth(
        name=group.name,
        full_width=group.full_width,
        width=width,
        kept=kept_indices(scores, width, group.channel_groups),
        producers=list(group.producers),
        consumers=list(group.consumers),
        locked=group.locked,
        importance_kept=importance_kept,
    )


def build_plan(
    prep: PreparedModel, problem: Problem, widths: np.ndarray, planning_s: float, kind: str = "plan", **extra
) -> Plan:
    """The Plan for `widths`: per-group kept channels, per-layer latency before and after, totals."""
    wm = problem.model
    before, after = wm.predict(problem.full), wm.predict(widths)
    prunable = np.array([len(a) > 1 for a in problem.allowed])
    total_imp = problem.importance(problem.full)
    groups = [
        group_width(g, int(w), s, float(c[w] / c[-1]) if c[-1] > 0 else 1.0)
        for g, w, s, c in zip(prep.groups, widths, prep.scores, problem.cum)
    ]
    align = alignment(wm.dtype)
    return Plan(
        kind=kind,
        wavecut_version=wavecut_version(),
        model=prep.spec,
        model_fingerprint=fingerprint(prep.model),
        weights=prep.weights,
        weights_sha256=prep.weights_sha256,
        input_shape=list(prep.input_shape),
        batch=wm.batch,
        dtype=wm.dtype,
        mode=wm.mode,
        gpu=wm.spec.name,
        gpu_spec=wm.spec.path,
        gpu_spec_hash=wm.spec.content_hash,
        importance=prep.importance,
        alignment=align,
        min_width_rule=f"max({MIN_CHANNELS}, {MIN_FRACTION:.0%} of full) rounded up to {align}",
        baseline_latency_us=before.total_us,
        planned_latency_us=after.total_us,
        channels_full=int(problem.full[prunable].sum()),
        channels_kept=int(widths[prunable].sum()),
        importance_kept=problem.importance(widths) / total_imp if total_imp > 0 else 1.0,
        planning_s=planning_s,
        groups=groups,
        layers=layer_latencies(wm.names, before, after),
        **extra,
    )


def layer_latencies(names: list[str], before: gpusim.Prediction, after: gpusim.Prediction) -> list[LayerLatency]:
    """Per op: latency before and after, and the waves and tail fill of its main (longest) launch."""
    main_b, main_a = before.main_launches(), after.main_launches()
    return [
        LayerLatency(
            name=n,
            op=main_b[i].op_kind,
            before_us=float(before.op_times_us[i]),
            after_us=float(after.op_times_us[i]),
            waves_before=main_b[i].waves,
            waves_after=main_a[i].waves,
            tail_before=main_b[i].tail_fill,
            tail_after=main_a[i].tail_fill,
        )
        for i, n in enumerate(names)
    ]


def read_widths(path: str | Path) -> tuple[Plan | None, dict[str, int]]:
    """Widths to snap: a plan file (and the plan), or a JSON mapping of group or layer names to widths."""
    try:
        data = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise WavecutError(f"{path}: no such file") from None
    except OSError as exc:
        raise WavecutError(f"{path}: cannot read the file ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise WavecutError(f"{path}: not JSON text ({str(exc)[:200]})") from None
    if isinstance(data, dict) and "groups" in data and "model_fingerprint" in data:
        plan = Plan.load(path)
        return plan, {g.name: g.width for g in plan.groups if not g.locked}
    if not isinstance(data, dict):
        raise WavecutError(f"{path}: expected a plan or a JSON object mapping layer or group names to widths")
    return None, data


def make_snap(
    prep: PreparedModel,
    problem: Problem,
    mapping: dict[str, int],
    threshold: float = DEFAULT_THRESHOLD,
    trade: bool = False,
) -> tuple[Plan, list[str]]:
    """Snap the widths in `mapping` onto step edges (with `trade`, spend the freed latency on growing groups);
    the Plan (kind 'snap', with its moves) and notes."""
    start = time.perf_counter()
    layers = dict(prep.model.named_modules())
    unknown = [name for name in mapping if not name or name not in layers]
    if unknown:
        raise WavecutError(f"widths name {unknown[0]!r}, which is not a layer of {prep.spec}")
    widths, notes = widths_from_mapping(prep.groups, mapping)
    snapped, moves = snap(problem, widths, threshold, [g.name for g in prep.groups], trade)
    comparison = [_row(problem, "input", None, widths), _row(problem, "snapped", None, snapped)]
    plan = build_plan(
        prep, problem, snapped, time.perf_counter() - start, kind="snap", comparison=comparison, moves=moves
    )
    return plan, notes
