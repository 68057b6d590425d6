"""Data types the simulator knows: their storage sizes, and which need a unit of their own."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpusim.errors import OpError

if TYPE_CHECKING:
    from gpusim.spec import GpuSpec

# fp8: E4M3 or E5M2 (one rate and size for both on every GPU that has them).
DTYPE_BYTES: dict[str, int] = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "int8": 1, "fp8": 1}
# Dtypes with no CUDA-core fallback in the libraries: they run only where the GPU has tensor cores for
# them (the others run at the FP32 rate where a GPU lacks a unit of their own).
NEEDS_TENSOR_CORES: frozenset[str] = frozenset({"fp8"})


def check_dtype(dtype: str, where: str = "--dtype") -> str:
    """Return dtype if known, else raise a one-line error naming the allowed values."""
    if dtype not in DTYPE_BYTES:
        raise OpError(f"{where}: unknown dtype {dtype!r}; allowed: {', '.join(DTYPE_BYTES)}")
    return dtype


def runs_on(dtype: str, spec: GpuSpec) -> bool:
    """Whether dtype can run on spec at all."""
    return dtype not in NEEDS_TENSOR_CORES or spec.uses_tensor_cores(dtype)


def check_dtype_on(dtype: str, spec: GpuSpec, where: str = "--dtype") -> str:
    """check_dtype, and a one-line error when the GPU cannot run dtype (fp8 without FP8 tensor cores)."""
    check_dtype(dtype, where)
    if not runs_on(dtype, spec):
        allowed = [d for d in DTYPE_BYTES if runs_on(d, spec)]
        raise OpError(
            f"{where}: {dtype} needs {dtype.upper()} tensor cores, which {spec.name} (compute capability "
            f"{spec.device.compute_capability}, {spec.path}) does not have; allowed on it: {', '.join(allowed)}"
        )
    return dtype
