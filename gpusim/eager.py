"""How eager PyTorch runs a network: precisions as PyTorch means them, mixed-dtype prediction, and the
host/GPU timeline (docs/networks.md).

Precisions (`--dtype`):
- `fp32`: PyTorch's defaults. cuDNN convolutions run in TF32 where the GPU has TF32 tensor cores
  (torch.backends.cudnn.allow_tf32 = True), matmuls in strict FP32
  (torch.backends.cuda.matmul.allow_tf32 = False) unless `allow_tf32_matmul`.
- `fp32-strict`: FP32 everywhere (both flags off). `tf32`: both flags on.
- `amp-fp16`, `amp-bf16`: torch.autocast over an fp32 model: conv, linear and matmul in the low
  dtype, the ops on autocast's fp32 list (softmax, layer norm) in fp32, every other op in the
  dtype its inputs promote to, and a cast kernel wherever an input is in the other dtype (every
  weight once per forward: the eager autocast cast cache lives for one autocast region).
- `fp16`, `bf16`, `int8`: the whole model converted to that dtype (model.half()).

A dtype the GPU has no tensor cores for runs at the rate the spec gives it (a native CUDA-core rate
such as Pascal GP100's paired FP16, else the FP32 rate: bf16 on Turing is computed in FP32), and
`precision_warnings` says so in one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gpusim.dtypes import DTYPE_BYTES
from gpusim.errors import OpError
from gpusim.ops import Op
from gpusim.predict import KernelLaunch, LoweredOps, Prediction
from gpusim.spec import GpuSpec


@dataclass(frozen=True)
class Precision:
    """Which gpusim dtype each class of op runs in: `conv` (cuDNN), `matmul` (cuBLAS: linear, bmm),
    `storage` (activations between ops); `autocast` is the low dtype of torch.autocast, or ''."""

    name: str
    conv: str
    matmul: str
    storage: str
    autocast: str = ""


# PyTorch's names first, then every other gpusim dtype run as itself (fp16, bf16, int8, fp8, ...).
AUTOCAST_PRECISIONS: tuple[str, ...] = ("amp-fp16", "amp-bf16")
# One dtype per op class (no autocast casts): what the planner prices.
PLAIN_PRECISIONS: tuple[str, ...] = ("fp32", "fp32-strict", "tf32") + tuple(
    d for d in DTYPE_BYTES if d not in ("fp32", "tf32")
)
PRECISIONS: tuple[str, ...] = PLAIN_PRECISIONS[:3] + AUTOCAST_PRECISIONS + PLAIN_PRECISIONS[3:]


def check_plain_precision(name: str, where: str = "--dtype") -> str:
    """`name` if it is one precision per op class (what the planner, sweeps and latency tables price), else a
    one-line OpError listing them (autocast's casts do not scale with channel widths)."""
    if name not in PLAIN_PRECISIONS:
        raise OpError(
            f"{where}: {name!r} is not one of {', '.join(PLAIN_PRECISIONS)} (one precision per op class; "
            "autocast's casts are priced by 'wavecut predict' and 'validate networks' only)"
        )
    return name


def resolve_precision(name: str, spec: GpuSpec, allow_tf32_matmul: bool = False) -> Precision:
    """The dtypes PyTorch runs each class of op in for precision `name` on `spec` (see the module doc)."""
    if name not in PRECISIONS:
        raise OpError(f"--dtype: unknown precision {name!r}; allowed: {', '.join(PRECISIONS)}")
    tf32 = "tf32" if spec.uses_tensor_cores("tf32") else "fp32"
    if name == "fp32":
        return Precision(name, tf32, tf32 if allow_tf32_matmul else "fp32", "fp32")
    if name == "fp32-strict":
        return Precision(name, "fp32", "fp32", "fp32")
    if name == "tf32":
        return Precision(name, "tf32", "tf32", "fp32")
    if name.startswith("amp-"):
        low = name.removeprefix("amp-")
        return Precision(name, low, low, low, autocast=low)
    return Precision(name, name, name, name)


def precision_warnings(precision: Precision, spec: GpuSpec) -> list[str]:
    """One line per GEMM dtype of `precision` that `spec` has no tensor cores for, naming the rate used."""
    lines = []
    for dtype in dict.fromkeys((precision.conv, precision.matmul)):
        if dtype == "fp32" or spec.uses_tensor_cores(dtype):
            continue
        if spec.has_native(dtype):
            how = f"its {dtype} CUDA-core rate"
        else:
            how = "its FP32 rate (computed in FP32)"
        rate = spec.peak_flops_per_us(dtype) / 1e6
        lines.append(f"{spec.name} has no {dtype} tensor cores: {dtype} GEMMs are priced at {how}, {rate:.1f} TFLOP/s")
    return lines


def predict_mixed(ops: Sequence[Op], dtypes: Sequence[str], spec: GpuSpec) -> Prediction:
    """Predict ops that run in different dtypes (one LoweredOps per dtype); launches keep the ops' order.

    The Prediction's dtype names every dtype used, joined with '+'."""
    if len(ops) != len(dtypes):
        raise OpError(f"predict_mixed: {len(ops)} ops but {len(dtypes)} dtypes")
    for d in set(dtypes):
        if d not in DTYPE_BYTES:
            raise OpError(f"dtype {d!r} unknown; allowed: {', '.join(DTYPE_BYTES)}")
    order = list(dict.fromkeys(dtypes))
    op_times = np.zeros(len(ops))
    host = np.zeros(len(ops))
    launches: list[KernelLaunch] = []
    for dtype in order:
        index = [i for i, d in enumerate(dtypes) if d == dtype]
        pred = LoweredOps([ops[i] for i in index], spec, dtype).predict()
        op_times[index] = pred.op_times_us
        host[index] = pred.host_overhead_us
        launches += [
            KernelLaunch(**{**k.to_dict(), "op_index": index[k.op_index]})  # back to the caller's op order
            for k in pred.launches
        ]
    launches.sort(key=lambda k: k.op_index)  # stable: an op's own launches keep their order
    return Prediction(spec.name, "+".join(order), launches, op_times, float(op_times.sum()), host)


def eager_step_us(gpu_us: np.ndarray, host_us: np.ndarray) -> float:
    """Wall time of one eager forward: the host issues op i after its own cost host_us[i] (the ops before
    it issued first), and the GPU starts each op when it is issued and the op before it has finished;
    the step ends when the last op finishes (torch.cuda.synchronize). GPU-bound networks take
    sum(gpu_us), host-bound ones about sum(host_us)."""
    issued = np.cumsum(host_us)
    end = 0.0
    for start, t in zip(issued, gpu_us):
        end = max(end, start) + t
    return float(end)
