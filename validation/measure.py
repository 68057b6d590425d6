"""The timing harness: build each op with torch, warm up, time it, and record its kernels.

On CUDA every op gets two rows (validation.readers.TIMINGS): `op_wall`, CUDA events around every
repeat (host overhead and launches inside), and `gpu_kernel`, the sum of the kernels each call
launched as the torch profiler records them, in a separate pass after the event timing so the
profiler cannot perturb it; the kernel names, grids and blocks come from that pass. With device
"cpu" the same plumbing runs as a dry run (time.perf_counter, no profiler: one `op_wall` row per
op, kernel fields empty). The only module of the package that imports torch.
"""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpusim.errors import WavecutError
from gpusim.ops import Conv2d, Linear, Op
from validation.clocks import ClockSampler, sampler_for
from validation.project_format import op_cells
from validation.sweeps import NetworkCase, Sweep, SweepError, sweep_ops
from validation.torch_calls import TORCH_CALLS, builder_for

MIN_REPEATS = 50
MAX_REPEATS = 2000
WARMUP_CALLS = 10
TARGET_TIMED_US = 50_000.0  # repeats are chosen so the timed calls add up to about this much
CPU_FLUSH_BYTES = 8 << 20  # the dry run only exercises the plumbing
TORCH_DTYPES = {"fp32": "float32", "tf32": "float32", "fp16": "float16", "bf16": "bfloat16"}
NETWORK_STEPS = 40  # timed forwards per network (timm's benchmark.py default --num-bench-iter)
PROFILED_CALLS = 20  # calls in the profiled pass; a gpu_kernel row is the median of their kernel sums (as Vidur's)
CALL_LABEL = "wavecut_call_"  # record_function range around each profiled call, numbered from 0
LAUNCH_CATEGORIES = ("cuda_runtime", "cuda_driver")  # profiler trace categories of the CPU-side kernel launches


class MeasureError(WavecutError):
    """A measurement that cannot run (no CUDA device, unknown device string)."""


@dataclass(frozen=True)
class Task:
    """One op to time in one dtype, tagged with the sweep it belongs to."""

    op: Op
    dtype: str
    sweep: str


@dataclass(frozen=True)
class KernelRecord:
    """One launched kernel as the profiler saw it."""

    name: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    duration_us: float


@dataclass(frozen=True)
class Timing:
    """Median and spread of the repeats, microseconds, and when they ran (time.monotonic() seconds)."""

    median_us: float
    p10_us: float
    p90_us: float
    repeats: int
    start_s: float
    end_s: float


def network_ops(case: NetworkCase) -> list[Op]:
    """Every conv and linear layer of a torchvision network, with the shapes its forward pass gives them."""
    import torch
    import torchvision

    try:
        model = torchvision.models.get_model(case.model, weights=None).eval()
    except ValueError:
        raise SweepError(
            f"networks: unknown torchvision model {case.model!r}; see torchvision.models.list_models()"
        ) from None
    ops: list[Op] = []

    def record(name: str):
        def hook(module, inputs, _output) -> None:
            shape = inputs[0].shape
            if isinstance(module, torch.nn.Linear):
                ops.append(
                    Linear(case.batch * math.prod(shape[:-1]), module.in_features, module.out_features, name=name)
                )
            elif isinstance(module.padding, str):
                raise SweepError(f"networks: {case.model}.{name}: padding {module.padding!r} is not supported")
            else:
                ops.append(
                    Conv2d(
                        case.batch,
                        module.in_channels,
                        module.out_channels,
                        shape[2],
                        shape[3],
                        module.kernel_size,
                        module.stride,
                        module.padding,
                        module.dilation,
                        module.groups,
                        name=f"{case.model}.{name}",
                    )
                )

        return hook

    handles = [
        m.register_forward_hook(record(n))
        for n, m in model.named_modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    with torch.inference_mode():
        model(torch.zeros(1, 3, case.size, case.size))
    for h in handles:
        h.remove()
    return ops


def plan_tasks(sweep: Sweep, dtypes: list[str] | None = None) -> list[Task]:
    """Every (op, dtype) of a sweep (cases, and the layers of `layers: true` networks); `dtypes` replaces
    the sweep's own list when given."""
    ops = sweep_ops(sweep) + [op for case in sweep.networks if case.layers for op in network_ops(case)]
    return [Task(op, dtype, sweep.name) for dtype in (dtypes or sweep.dtypes) for op in ops]


@dataclass(frozen=True)
class NetworkTask:
    """One whole network to time in one precision (validation.networks' row format)."""

    case: NetworkCase
    dtype: str


def plan_networks(sweep: Sweep) -> list[NetworkTask]:
    """Every (whole network, precision) of a sweep: each case's dtypes, else the sweep's."""
    return [NetworkTask(c, d) for c in sweep.networks if not c.layers for d in (c.dtypes or sweep.dtypes)]


@contextmanager
def _network_flags(dtype: str):
    """PyTorch's flags for a network precision (gpusim.eager): fp32 = the defaults (cuDNN TF32 on, matmul
    TF32 off), fp32-strict both off, tf32 both on; cuDNN autotuning on; restored afterwards."""
    import torch

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.allow_tf32 = dtype != "fp32-strict"
    torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark) = saved


def network_step(task: NetworkTask, device: str) -> Callable[[], object]:
    """One forward of the task's network as its precision runs it: autocast over the fp32 model for amp-*,
    the model converted for fp16 / bf16, fp32 otherwise; returns once the device has finished."""
    import torch
    import torchvision

    case = task.case
    try:
        model = torchvision.models.get_model(case.model, weights=None).eval().to(device)
    except ValueError:
        raise SweepError(
            f"networks: unknown torchvision model {case.model!r}; see torchvision.models.list_models()"
        ) from None
    x = torch.randn(case.batch, 3, case.size, case.size, device=device)
    low = getattr(torch, TORCH_DTYPES.get(task.dtype.removeprefix("amp-"), "float32"))
    if task.dtype in ("fp16", "bf16"):
        model, x = model.to(low), x.to(low)
    autocast = task.dtype.startswith("amp-")
    device_type = "cpu" if device == "cpu" else "cuda"

    def step() -> None:
        with torch.autocast(device_type, low, enabled=autocast):
            model(x)
        if device != "cpu":
            torch.cuda.synchronize(device)

    return step


def measure_networks(tasks: list[NetworkTask], device: str = "cuda") -> Iterator[dict[str, str]]:
    """Time every whole-network task as timm does (WARMUP_CALLS untimed steps, then NETWORK_STEPS steps of
    time.perf_counter around one forward and its synchronize); yields one row of NETWORK_COLUMNS each."""
    import torch

    from validation.networks import NETWORK_COLUMNS

    device = check_device(device)
    name, env = device_name(device), environment(device)
    with torch.inference_mode(), _cpu_threads(device):
        for task in tasks:
            with _network_flags(task.dtype):
                step = network_step(task, device)
                for _ in range(WARMUP_CALLS):
                    step()
                times = []
                for _ in range(NETWORK_STEPS):
                    t0 = time.perf_counter()
                    step()
                    times.append((time.perf_counter() - t0) * 1e6)
            cells = {
                "model": task.case.model,
                "batch": str(task.case.batch),
                "img_size": str(task.case.size),
                "channels": "3",
                "dtype": task.dtype,
                "mode": "eager",
                "device": name,
                "median_us": f"{np.median(times):.3f}",
                "p10_us": f"{np.percentile(times, 10):.3f}",
                "p90_us": f"{np.percentile(times, 90):.3f}",
                "repeats": str(len(times)),
                "timing": "host_wall_step",
                "allow_tf32_matmul": str(int(task.dtype == "tf32")),
                "torch": env["torch"],
                "cuda": env["cuda"],
            }
            yield {c: cells[c] for c in NETWORK_COLUMNS}


def check_device(device: str) -> str:
    """'cpu' or a CUDA device string that torch can use; a one-line error otherwise."""
    import torch

    if device == "cpu":
        return device
    if not device.startswith("cuda"):
        raise MeasureError(f"--device: {device!r} unknown; allowed: cuda, cuda:N, cpu (dry run)")
    if not torch.cuda.is_available():
        raise MeasureError("--device cuda: no CUDA GPU is visible to torch; use --device cpu for a dry run")
    return device


def device_name(device: str) -> str:
    """The name written in the CSV: torch.cuda.get_device_name() on CUDA, 'cpu' on the CPU."""
    import torch

    return "cpu" if device == "cpu" else torch.cuda.get_device_name(torch.device(device))


def _driver_version() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.strip().splitlines()[0] if out.strip() else ""


def environment(device: str) -> dict[str, str]:
    """Driver, CUDA, torch and cuDNN versions (empty where not applicable)."""
    import torch

    cuda = device != "cpu"
    return {
        "driver": _driver_version() if cuda else "",
        "cuda": (torch.version.cuda or "") if cuda else "",
        "torch": torch.__version__,
        "cudnn": str(torch.backends.cudnn.version() or "") if cuda else "",
    }


def build_call(op: Op, dtype: str, device: str) -> Callable[[], object]:
    """A no-argument callable that runs op once with torch on device: its kind's builder
    (validation.torch_calls; conv bias off, linear bias on)."""
    import torch

    builder = builder_for(op)
    if builder is None:
        raise MeasureError(f"op {op.kind}: cannot be timed; allowed: {', '.join(TORCH_CALLS)}")
    return builder(op, {"device": device, "dtype": getattr(torch, TORCH_DTYPES[dtype])})


def _samples_cuda(fn: Callable[[], object], n: int, flush: Callable[[], object] | None) -> list[float]:
    import torch

    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    for start, end in zip(starts, ends):
        if flush is not None:
            flush()
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return [s.elapsed_time(e) * 1000.0 for s, e in zip(starts, ends)]


def _samples_cpu(fn: Callable[[], object], n: int, flush: Callable[[], object] | None) -> list[float]:
    out = []
    for _ in range(n):
        if flush is not None:
            flush()
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def repeats_for(estimate_us: float) -> int:
    """Adaptive repeat count: enough calls to fill TARGET_TIMED_US, within [MIN_REPEATS, MAX_REPEATS]."""
    return int(min(MAX_REPEATS, max(MIN_REPEATS, math.ceil(TARGET_TIMED_US / max(estimate_us, 1e-3)))))


def time_call(fn: Callable[[], object], device: str, flush: Callable[[], object] | None = None) -> Timing:
    """Warm up, pick the repeat count from the warm-up times, time every repeat; median, p10, p90."""
    samples = _samples_cpu if device == "cpu" else _samples_cuda
    estimate = float(np.median(samples(fn, WARMUP_CALLS, flush)))
    start = time.monotonic()
    times = np.array(samples(fn, repeats_for(estimate), flush))  # returns once the device has finished
    return Timing(
        float(np.median(times)),
        float(np.percentile(times, 10)),
        float(np.percentile(times, 90)),
        len(times),
        start,
        time.monotonic(),
    )


def _kernel_record(event: dict) -> KernelRecord:
    args = event.get("args", {})
    return KernelRecord(
        name=event["name"],
        grid=tuple(args.get("grid", (0, 0, 0))),
        block=tuple(args.get("block", (0, 0, 0))),
        duration_us=float(event.get("dur", 0.0)),
    )


def kernels_from_trace(trace: dict) -> list[KernelRecord]:
    """The GPU kernels in a torch profiler Chrome trace, in launch order."""
    events = sorted((e for e in trace.get("traceEvents", []) if e.get("cat") == "kernel"), key=lambda e: e.get("ts", 0))
    return [_kernel_record(e) for e in events]


def kernels_by_call(trace: dict) -> list[list[KernelRecord]]:
    """The kernels each profiled call launched, in call order: a kernel belongs to the call whose record_function
    range (CALL_LABEL + its index) holds the CPU-side launch it correlates with (`args.correlation`). Kernels
    launched outside every call (the L2 flush between calls) belong to none."""
    events = trace.get("traceEvents", [])
    ranges: dict[int, tuple[float, float]] = {}
    for e in events:
        name = str(e.get("name", ""))
        if e.get("cat") == "user_annotation" and name.startswith(CALL_LABEL) and name[len(CALL_LABEL) :].isdigit():
            ranges[int(name[len(CALL_LABEL) :])] = (float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0.0)))
    call_of: dict[object, int] = {}
    for e in events:
        if e.get("cat") in LAUNCH_CATEGORIES and "correlation" in e.get("args", {}):
            ts = float(e.get("ts", 0.0))
            for call, (start, end) in ranges.items():
                if start <= ts <= end:
                    call_of[e["args"]["correlation"]] = call
    calls: list[list[KernelRecord]] = [[] for _ in range(max(ranges, default=-1) + 1)]
    for e in sorted((e for e in events if e.get("cat") == "kernel"), key=lambda e: e.get("ts", 0)):
        call = call_of.get(e.get("args", {}).get("correlation"))
        if call is not None:
            calls[call].append(_kernel_record(e))
    return calls


# Runs fn `calls` times (calling the flush, if any, before each, outside the call) under a kernel profiler and
# returns the kernels of each call (kernels_by_call).
Profiler = Callable[[Callable[[], object], int, Callable[[], object] | None], list[list[KernelRecord]]]


def profile_calls(
    fn: Callable[[], object], calls: int, flush: Callable[[], object] | None = None
) -> list[list[KernelRecord]]:
    """Run fn `calls` times under the torch profiler (CUDA activity), each call in its own record_function
    range, and return the kernels each call launched."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for i in range(calls):
            if flush is not None:
                flush()
            with record_function(f"{CALL_LABEL}{i}"):
                fn()
        torch.cuda.synchronize()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        return kernels_by_call(json.loads(path.read_text()))


def profiler_for(device: str) -> Profiler | None:
    """The kernel profiler of a device: torch's on CUDA, none for the CPU dry run (it launches no kernels)."""
    return None if device == "cpu" else profile_calls


def kernel_timing(
    fn: Callable[[], object], profiler: Profiler, flush: Callable[[], object] | None
) -> tuple[Timing | None, list[KernelRecord]]:
    """(Timing of the per-call kernel sums, the first call's kernels) over PROFILED_CALLS profiled calls; Timing is
    None when a call launched no kernel (nothing to sum)."""
    start = time.monotonic()
    calls = profiler(fn, PROFILED_CALLS, flush)
    end = time.monotonic()
    if not calls or not all(calls):
        return None, calls[0] if calls else []
    sums = np.array([sum(k.duration_us for k in call) for call in calls])
    timing = Timing(
        float(np.median(sums)),
        float(np.percentile(sums, 10)),
        float(np.percentile(sums, 90)),
        len(sums),
        start,
        end,
    )
    return timing, calls[0]


def kernel_cells(kernels: list[KernelRecord]) -> dict[str, str]:
    """The main (longest) kernel's name, grid and block, and every kernel's name; empty without kernels."""
    if not kernels:
        return {
            "kernel": "",
            "grid_x": "",
            "grid_y": "",
            "grid_z": "",
            "block_x": "",
            "block_y": "",
            "block_z": "",
            "kernels": "",
        }
    main = max(kernels, key=lambda k: k.duration_us)
    return {
        "kernel": main.name,
        **{f"grid_{a}": str(v) for a, v in zip("xyz", main.grid)},
        **{f"block_{a}": str(v) for a, v in zip("xyz", main.block)},
        "kernels": ";".join(k.name for k in kernels),
    }


@contextmanager
def _backend_flags(dtype: str):
    """TF32 on only for 'tf32'; cuDNN autotuning on (as NeuSight measured); restored afterwards."""
    import torch

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = dtype == "tf32"
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark) = saved


def _flusher(device: str) -> Callable[[], object]:
    """Zero a buffer twice the L2 size (CPU dry run: 8 MiB) so each repeat starts with a cold cache."""
    import torch

    size = (
        CPU_FLUSH_BYTES if device == "cpu" else 2 * torch.cuda.get_device_properties(torch.device(device)).L2_cache_size
    )
    buf = torch.empty(max(size, 1 << 20), dtype=torch.uint8, device=device)
    return buf.zero_


@contextmanager
def _cpu_threads(device: str):
    """One intra-op thread for the CPU dry run (many threads contend badly on small ops); restored afterwards."""
    import torch

    saved = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def gpu_id(device: str) -> str:
    """The id NVML and nvidia-smi know a CUDA device by: its UUID ('GPU-...'), which CUDA_VISIBLE_DEVICES
    cannot renumber; the CUDA index where torch does not report one."""
    import torch

    index = torch.device(device).index or 0
    uuid = str(getattr(torch.cuda.get_device_properties(index), "uuid", "") or "")  # torch prints it bare
    return f"GPU-{uuid.removeprefix('GPU-')}" if uuid else str(index)


def clock_cells(sampler: ClockSampler | None, timing: Timing) -> dict[str, str]:
    """Median SM clock (MHz) and board power (W) over the timed repeats; empty cells without samples."""
    clock, power = sampler.window(timing.start_s, timing.end_s) if sampler else (None, None)
    return {"sm_clock_mhz": "" if clock is None else f"{clock:.0f}", "power_w": "" if power is None else f"{power:.1f}"}


def timing_cells(timing: Timing, kind: str) -> dict[str, str]:
    """The cells of one timing: what it includes (TIMINGS), median, spread and repeats."""
    return {
        "timing": kind,
        "median_us": f"{timing.median_us:.3f}",
        "p10_us": f"{timing.p10_us:.3f}",
        "p90_us": f"{timing.p90_us:.3f}",
        "repeats": str(timing.repeats),
    }


def measure(
    tasks: list[Task], device: str = "cuda", l2_flush: bool = False, profiler: Profiler | None = None
) -> Iterator[dict[str, str]]:
    """Time every task on device; yields project-format rows (validation/README.md): per task an `op_wall` row
    (CUDA events) and, where the profiler saw kernels, a `gpu_kernel` row (their per-call sum) from a separate
    profiled pass. `profiler` defaults to profiler_for(device)."""
    import torch

    device = check_device(device)
    name, env = device_name(device), environment(device)
    flush = _flusher(device) if l2_flush else None
    sampler = None if device == "cpu" else sampler_for(gpu_id(device))
    profiler = profiler or profiler_for(device)
    with torch.inference_mode(), _cpu_threads(device), sampler or nullcontext():
        for task in tasks:
            with _backend_flags(task.dtype):
                fn = build_call(task.op, task.dtype, device)
                wall = time_call(fn, device, flush)
                kernel, kernels = kernel_timing(fn, profiler, flush) if profiler else (None, [])
            cells = {
                **op_cells(task.op),
                "sweep": task.sweep,
                "dtype": task.dtype,
                "device": name,
                "l2_flush": str(int(l2_flush)),
                **kernel_cells(kernels),
                **env,
            }
            yield {**cells, **timing_cells(wall, "op_wall"), **clock_cells(sampler, wall)}
            if kernel is not None:
                yield {**cells, **timing_cells(kernel, "gpu_kernel"), **clock_cells(sampler, kernel)}
