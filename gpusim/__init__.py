"""gpusim: an analytical model of thread blocks, SMs and waves that predicts GPU kernel latency.

Imports numpy, numba, pydantic and PyYAML only (never torch).
"""

from gpusim.attention import ScaledDotProductAttention
from gpusim.dtypes import DTYPE_BYTES
from gpusim.errors import OpError, SpecError, WavecutError
from gpusim.occupancy import Occupancy, occupancy
from gpusim.ops import (
    OP_KINDS,
    Conv2d,
    Linear,
    Matmul,
    MemoryOp,
    Op,
    batchnorm,
    elementwise,
    layernorm,
    op_class,
    pool,
    register,
    softmax,
)
from gpusim.predict import KernelLaunch, Prediction, predict
from gpusim.spec import GpuSpec, list_specs, load_spec

DTYPES = tuple(DTYPE_BYTES)

__all__ = [
    "DTYPES",
    "OP_KINDS",
    "Conv2d",
    "GpuSpec",
    "KernelLaunch",
    "Linear",
    "Matmul",
    "MemoryOp",
    "Occupancy",
    "Op",
    "OpError",
    "Prediction",
    "ScaledDotProductAttention",
    "SpecError",
    "WavecutError",
    "batchnorm",
    "elementwise",
    "layernorm",
    "list_specs",
    "load_spec",
    "occupancy",
    "op_class",
    "pool",
    "predict",
    "register",
    "softmax",
]
