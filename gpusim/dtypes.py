"""Data types the simulator knows and their storage sizes."""

from gpusim.errors import OpError

DTYPE_BYTES: dict[str, int] = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "int8": 1}


def check_dtype(dtype: str, where: str = "--dtype") -> str:
    """Return dtype if known, else raise a one-line error naming the allowed values."""
    if dtype not in DTYPE_BYTES:
        raise OpError(f"{where}: unknown dtype {dtype!r}; allowed: {', '.join(DTYPE_BYTES)}")
    return dtype
