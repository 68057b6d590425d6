"""Defaults shared by `wavecut predict` and the planner, so that predicting a pruned model reproduces a plan."""

from gpusim.spec import DEFAULT_GPU

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_DTYPE",
    "DEFAULT_GPU",
    "DEFAULT_INPUT",
    "DEFAULT_MODE",
    "DEFAULT_MODEL",
    "DEFAULT_SNAP_THRESHOLD",
    "MODES",
    "check_mode",
]
DEFAULT_BATCH = 1
DEFAULT_DTYPE = "fp16"
DEFAULT_MODE = "fused"
DEFAULT_INPUT = (3, 224, 224)
DEFAULT_MODEL = "resnet50"
MODES = ("eager", "fused")
# snap takes a move when the importance it loses per microsecond saved is at most this fraction of the input's
# average importance per microsecond; 1 is break-even: no move lowers the importance kept per microsecond
DEFAULT_SNAP_THRESHOLD = 1.0


def check_mode(mode: str) -> str:
    """mode if it is one of MODES, else a one-line WavecutError."""
    from gpusim.errors import WavecutError

    if mode not in MODES:
        raise WavecutError(f"--mode: unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    return mode
