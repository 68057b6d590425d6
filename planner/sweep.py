"""Sweeps: a declared grid of predictions and plans, run as tasks in-process or on Dask, written as a resumable CSV.

A sweep config (YAML, validated with pydantic) names models x GPUs x batch sizes x dtypes x modes;
`widths` adds random width vectors per model (a NAS search space), priced with Network.predict_many;
`plans` adds budgets x importance methods, each a `wavecut plan`. Every configuration is one row,
identified by a hash of its fields: a rerun skips the ids already in the file, rows are appended and
fsynced as each task finishes, and a configuration that fails (unknown model or GPU, unreachable
budget) is a row whose `error` column says why, without stopping the sweep.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

import gpusim
from gpusim.dtypes import DTYPE_BYTES
from gpusim.errors import WavecutError
from planner.candidates import allowed_widths, minimum_width
from planner.defaults import DEFAULT_INPUT, MODES
from planner.groups import ChannelGroup, find_groups
from planner.models import load_model
from planner.network import Network, Setting
from planner.plan import IMPORTANCE_METHODS, make_plan, prepare
from planner.plan_model import wavecut_version

COLUMNS = (
    "id",
    "kind",
    "model",
    "input_shape",
    "gpu",
    "batch",
    "dtype",
    "mode",
    "width_space",
    "width_index",
    "budget",
    "importance",
    "widths",
    "latency_us",
    "baseline_us",
    "importance_kept",
    "channels_kept",
    "channels_full",
    "error",
    "wavecut_version",
    "torch_version",
    "gpu_spec_hash",
)
# The columns that name a configuration (its id is their hash).
KEY_COLUMNS = COLUMNS[1:12]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WidthSamples(_Strict):
    """Random width vectors per model: each prunable group at one of its choices (locked groups at full width).

    Choices are `keep` ratios of the full width rounded up to `align` channels (at least `align`), or,
    with `step`, every multiple of `step` from the planner's minimum width (max(8, 10%) rounded up)."""

    samples: int = Field(ge=1)
    seed: int = 0
    keep: list[float] | None = None
    step: int | None = Field(default=None, ge=1)
    align: int = Field(default=8, ge=1)

    @model_validator(mode="after")
    def _one_space(self) -> WidthSamples:
        if self.keep is not None and self.step is not None:
            raise ValueError("give either keep or step, not both")
        if self.keep is None and self.step is None:
            self.keep = [0.25, 0.5, 0.75, 1.0]
        if self.keep is not None and (not self.keep or not all(0 < k <= 1 for k in self.keep)):
            raise ValueError("keep ratios must be in (0, 1]")
        return self


class PlanGrid(_Strict):
    """Plans for every budget (a fraction of the unpruned latency, or a time such as 2.5ms) and importance."""

    budgets: list[str] = Field(min_length=1)
    importance: list[Literal[IMPORTANCE_METHODS]] = ["magnitude"]  # type: ignore[valid-type]


class SweepConfig(_Strict):
    """The grid: models x gpus x batch x dtype x mode; with `widths`, x width vectors; with `plans`, x budgets x importance."""

    models: list[str] = Field(min_length=1)
    gpus: list[str] = Field(min_length=1)
    batch: list[PositiveInt] = Field(default=[1], min_length=1)
    dtype: list[Literal[tuple(DTYPE_BYTES)]] = ["fp16"]  # type: ignore[valid-type]
    mode: list[Literal[MODES]] = ["fused"]  # type: ignore[valid-type]
    input_shape: list[PositiveInt] = Field(default=list(DEFAULT_INPUT), min_length=1)
    widths: WidthSamples | None = None
    plans: PlanGrid | None = None
    chunk: PositiveInt = Field(default=500, description="width vectors per task")


def load_config(path: str | Path) -> SweepConfig:
    """Read and validate a sweep config; a mistake is one WavecutError line naming the file and field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise WavecutError(f"{path}: cannot read the file ({exc.strerror})") from None
    except yaml.YAMLError:
        raise WavecutError(f"{path}: is not valid YAML") from None
    if not isinstance(data, dict):
        raise WavecutError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return SweepConfig(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(file)"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise WavecutError(f"{path}: field '{field}': {msg}") from None


@dataclass(frozen=True)
class Task:
    """One unit of work: a model on one setting, for some width vectors (predict) or budgets (plan)."""

    kind: Literal["predict", "plan"]
    model: str
    input_shape: tuple[int, ...]
    setting: Setting
    widths: WidthSamples | None = None
    width_rows: tuple[int, ...] = ()  # indices into the model's width samples; () with no widths: full width
    budgets: tuple[str, ...] = ()
    importance: str = ""

    def keys(self) -> list[dict]:
        """The id and key columns of each row this task writes, in order."""
        base = {
            "kind": self.kind,
            "model": self.model,
            "input_shape": "x".join(map(str, self.input_shape)),
            "gpu": str(self.setting.gpu),
            "batch": self.setting.batch,
            "dtype": self.setting.dtype,
            "mode": self.setting.mode,
            "width_space": "",
            "width_index": "",
            "budget": "",
            "importance": self.importance,
        }
        if self.kind == "plan":
            keys = [{**base, "budget": b} for b in self.budgets]
        elif self.widths is None:
            keys = [base]
        else:
            space = self.widths.model_dump_json()
            keys = [{**base, "width_space": space, "width_index": i} for i in self.width_rows]
        return [{"id": row_id(k), **k} for k in keys]

    def ids(self) -> list[str]:
        """The id of each row this task writes."""
        return [k["id"] for k in self.keys()]

    def only(self, ids: set[str]) -> Task | None:
        """This task cut down to the rows whose ids are in `ids` (None when none are)."""
        keep = [i in ids for i in self.ids()]
        if all(keep):
            return self
        if not any(keep):
            return None
        if self.kind == "plan":
            return replace(self, budgets=tuple(b for b, k in zip(self.budgets, keep) if k))
        return replace(self, width_rows=tuple(r for r, k in zip(self.width_rows, keep) if k))


def row_id(key: dict) -> str:
    """A configuration's id: the hash of its key columns."""
    text = json.dumps({k: str(key[k]) for k in KEY_COLUMNS}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def tasks(cfg: SweepConfig) -> list[Task]:
    """Every task of the grid, in config order (width vectors cut into chunks of cfg.chunk)."""
    shape = tuple(cfg.input_shape)
    settings = [Setting(g, b, d, m) for g in cfg.gpus for b in cfg.batch for d in cfg.dtype for m in cfg.mode]
    out = []
    for model in cfg.models:
        for s in settings:
            if cfg.widths is None:
                out.append(Task("predict", model, shape, s))
            else:
                rows = range(cfg.widths.samples)
                for at in range(0, len(rows), cfg.chunk):
                    out.append(Task("predict", model, shape, s, cfg.widths, tuple(rows[at : at + cfg.chunk])))
            if cfg.plans is not None:
                for imp in cfg.plans.importance:
                    out.append(Task("plan", model, shape, s, budgets=tuple(cfg.plans.budgets), importance=imp))
    return out


@lru_cache(maxsize=16)
def traced(model: str, input_shape: tuple[int, ...]) -> tuple[Network, list[ChannelGroup]]:
    """The traced network and channel groups of a model (once per process: a worker reuses them)."""
    torch.manual_seed(0)
    module = load_model(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Network.from_model(module, input_shape, model), find_groups(module, torch.zeros(1, *input_shape))


@lru_cache(maxsize=16)
def _prepared(model: str, input_shape: tuple[int, ...], importance: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare(model, input_shape, importance)


def width_choices(groups: list[ChannelGroup], samples: WidthSamples) -> list[np.ndarray]:
    """Each group's width choices in the sampled space (locked groups: their full width only)."""
    a = samples.align
    out = []
    for g in groups:
        if not g.prunable:
            out.append(np.array([g.full_width]))
        elif samples.step is not None:
            step = g.width_multiple(samples.step)
            out.append(np.array(allowed_widths(g.full_width, step, minimum_width(g.full_width, step))))
        else:
            m = g.width_multiple(a)
            out.append(
                np.array(
                    sorted({min(g.full_width, max(m, -(-round(k * g.full_width) // m) * m)) for k in samples.keep})
                )
            )
    return out


def width_samples(model: str, groups: list[ChannelGroup], samples: WidthSamples) -> np.ndarray:
    """The sampled width vectors of a model (samples x groups), the same on every machine for a seed."""
    rng = np.random.default_rng([samples.seed, zlib.crc32(model.encode())])
    choices = width_choices(groups, samples)
    if not choices:
        return np.zeros((samples.samples, 0), np.int64)
    return np.stack([c[rng.integers(len(c), size=samples.samples)] for c in choices], axis=1).astype(np.int64)


def run_task(task: Task) -> list[dict]:
    """The rows of one task; a failure becomes the `error` of its rows (never raised)."""
    keys = task.keys()
    common = {"wavecut_version": wavecut_version(), "torch_version": torch.__version__}
    try:
        spec = gpusim.load_spec(task.setting.gpu)
        common["gpu_spec_hash"] = spec.content_hash
        if task.kind == "plan":
            return [{**k, **common, **_plan_row(task, k["budget"])} for k in keys]
        net, groups = traced(task.model, task.input_shape)
        if task.widths is None:
            total = net.predict_many([task.setting])[0, 0]
            return [{**keys[0], **common, "latency_us": float(total)}]
        widths = width_samples(task.model, groups, task.widths)[list(task.width_rows)]
        totals = net.predict_many([task.setting], widths, groups)[0]
        return [
            {**k, **common, "widths": ",".join(map(str, w)), "latency_us": float(t)}
            for k, w, t in zip(keys, widths.tolist(), totals)
        ]
    except Exception as exc:  # any failure of this configuration is reported in its rows
        return [{**k, **common, "error": _one_line(exc)} for k in keys]


def _plan_row(task: Task, budget: str) -> dict:
    try:
        prep = _prepared(task.model, task.input_shape, task.importance)
        s = task.setting
        plan = make_plan(task.model, s.gpu, budget, s.batch, s.dtype, s.mode, task.input_shape, prep=prep)
    except Exception as exc:  # an unreachable budget fails this row only
        return {"error": _one_line(exc)}
    return {
        "latency_us": plan.planned_latency_us,
        "baseline_us": plan.baseline_latency_us,
        "importance_kept": plan.importance_kept,
        "channels_kept": plan.channels_kept,
        "channels_full": plan.channels_full,
    }


def _one_line(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if isinstance(exc, WavecutError) else f"{type(exc).__name__}: {text}"


class Results:
    """The results CSV: ids already written (a torn last line from an interrupt is dropped), and appends
    that are flushed and fsynced, so a finished row is never lost."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.done: dict[str, dict] = {}
        if self.path.exists() and self.path.stat().st_size:
            text = self.path.read_text()
            if not text.endswith("\n"):
                os.truncate(self.path, len(text[: text.rfind("\n") + 1].encode()))
                text = text[: text.rfind("\n") + 1]
            reader = csv.DictReader(io.StringIO(text))
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise WavecutError(f"{self.path}: not a sweep results file of this wavecut (its columns differ)")
            self.done = {r["id"]: r for r in reader}
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(",".join(COLUMNS) + "\n")

    def append(self, rows: list[dict]) -> None:
        """Write rows (with their ids) at the end of the file, durably."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
        for r in rows:
            full = {c: r.get(c, "") for c in COLUMNS}
            writer.writerow(full)
            self.done[full["id"]] = full
        with self.path.open("a") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())


def pending(cfg: SweepConfig, done: dict[str, dict], retry_errors: bool = False) -> list[Task]:
    """The tasks (cut down) whose rows are not in `done` (id -> row); with retry_errors, failed rows run again."""
    finished = {i for i, r in done.items() if not (retry_errors and r.get("error"))}
    out = []
    for t in tasks(cfg):
        todo = {i for i in t.ids() if i not in finished}
        cut = t.only(todo) if todo else None
        if cut is not None:
            out.append(cut)
    return out


def execute(todo: list[Task], scheduler: str | None = None, workers: int = 0) -> Iterator[list[dict]]:
    """Run tasks and yield each one's rows as it finishes: in this process (workers=0 and no scheduler),
    on a Dask LocalCluster of `workers` single-threaded processes, or on the Dask scheduler at `scheduler`."""
    if scheduler is None and workers == 0:
        for t in todo:
            yield run_task(t)
        return
    with dask_client(scheduler, workers) as client:
        yield from run_on(client, todo)


@contextmanager
def dask_client(scheduler: str | None, workers: int) -> Iterator:
    """A Dask client of the scheduler at `scheduler`, or of a new LocalCluster (processes, one thread each)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise WavecutError("--workers/--scheduler need Dask: pip install 'wavecut[sweep]'") from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise WavecutError(f"--scheduler: cannot reach {scheduler} ({exc})") from None
        with client:
            yield client
        return
    import dask

    # Linux: workers start as forks of this process, which has imported torch and gpusim already (a
    # spawned worker imports them again: 5-20 s each on a busy 2-core machine); elsewhere Dask's spawn.
    method = "fork" if sys.platform == "linux" else dask.config.get("distributed.worker.multiprocessing-method")
    with dask.config.set({"distributed.worker.multiprocessing-method": method}):
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
        )
    with cluster, Client(cluster) as client:
        yield client


def run_on(client, todo: list[Task]) -> Iterator[list[dict]]:
    """Submit every task to a Dask client and yield each one's rows as it finishes (a lost task: error rows)."""
    from distributed import as_completed

    futures = {client.submit(run_task, t, pure=False): t for t in todo}
    for future in as_completed(futures):
        try:
            yield future.result()
        except Exception as exc:  # a worker died or the task could not be sent
            yield [{**k, "error": f"task failed on the cluster: {_one_line(exc)}"} for k in futures[future].keys()]


def run_sweep(
    cfg: SweepConfig,
    out: str | Path,
    scheduler: str | None = None,
    workers: int = 0,
    retry_errors: bool = False,
    on_start: Callable[[int, int], None] | None = None,
    on_rows: Callable[[list[dict]], None] | None = None,
) -> Results:
    """Run every configuration of `cfg` not yet in `out` and append its rows; returns the results file.

    on_start(rows already done, rows to run) and on_rows(rows) follow progress."""
    results = Results(out)
    todo = pending(cfg, results.done, retry_errors)
    if on_start is not None:
        on_start(len(results.done), sum(len(t.keys()) for t in todo))
    for rows in execute(todo, scheduler, workers) if todo else ():
        results.append(rows)
        if on_rows is not None:
            on_rows(rows)
    return results
