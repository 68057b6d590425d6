"""`wavecut predict`: per-layer latency, waves and tail waste of a whole PyTorch model on a GPU."""

from __future__ import annotations

import sys
import warnings

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from gpusim.eager import resolve_precision
from gpusim.errors import WavecutError
from gpusim.kernels import kernel_table
from gpusim.ops import OP_KINDS
from gpusim.spec import load_spec
from planner.defaults import (
    DEFAULT_BATCH,
    DEFAULT_DTYPE,
    DEFAULT_GPU,
    DEFAULT_INPUT,
    DEFAULT_MODE,
    DEFAULT_MODEL,
    check_mode,
)
from wavecut.output import console, print_json


def parse_input(text: str) -> tuple[int, ...]:
    """'3x224x224' -> (3, 224, 224): the input shape without the batch."""
    try:
        dims = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        dims = ()
    if not dims or min(dims) < 1:
        raise WavecutError(f"--input: {text!r} must be positive whole numbers joined by 'x', e.g. 3x224x224")
    return dims


TRUST_HELP = "unpickle model and weights files in full (can run code they hold); default: weights only"


def trust_model_files(trust: bool) -> None:
    """Set whether this command may unpickle model files in full; say so on stderr when it may."""
    from planner.models import TRUST_MODEL_FILES

    TRUST_MODEL_FILES.set(trust)
    if trust:
        print(
            "wavecut: warning: --trust-model-file: model and weights files are unpickled in full, "
            "which runs any code they hold",
            file=sys.stderr,
        )


def predict(
    model: str = typer.Argument(DEFAULT_MODEL, help="torchvision name, package.module:factory, or a torch.save file"),
    gpu: str = typer.Option(DEFAULT_GPU, help="GPU name, alias or spec file"),
    batch: int = typer.Option(DEFAULT_BATCH, help="batch size"),
    dtype: str = typer.Option(
        DEFAULT_DTYPE,
        help="fp32 (PyTorch's defaults: TF32 convs on sm80+), fp32-strict, tf32, amp-fp16, amp-bf16 (autocast), "
        "fp16, bf16 or int8 (model converted)",
    ),
    allow_tf32_matmul: bool = typer.Option(
        False, "--allow-tf32-matmul", help="fp32: matmuls in TF32 too (torch.backends.cuda.matmul.allow_tf32)"
    ),
    mode: str = typer.Option(DEFAULT_MODE, help="eager (one kernel per PyTorch op) or fused (conv+BN+act+add)"),
    input_shape: str = typer.Option("x".join(map(str, DEFAULT_INPUT)), "--input", help="input shape without batch"),
    strict: bool = typer.Option(False, "--strict", help="fail on ops that have no gpusim equivalent"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    trust: bool = typer.Option(False, "--trust-model-file", help=TRUST_HELP),
) -> None:
    """Predict a whole model layer by layer: kernels, grids, waves, tail waste and the total."""
    trust_model_files(trust)
    shape = parse_input(input_shape)
    check_mode(mode)
    spec = load_spec(gpu)
    resolve_precision(dtype, spec)  # an unknown precision fails before the model is traced
    from planner.network import Network

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        network = Network.load(model, shape, strict)
        result = network.predict(spec, batch, dtype, mode, allow_tf32_matmul)
    for w in caught:
        print(f"wavecut: warning: {w.message}", file=sys.stderr)
    fallback = kernel_table(spec).fallback  # a GPU whose compute capability has no tuned kernel table
    if fallback:
        print(f"wavecut: note: {fallback}", file=sys.stderr)
    if as_json:
        print_json({**result.to_dict(), "fallback": fallback})
        return
    table = Table(title=f"{model} on {result.gpu}, {dtype}, batch {batch}, {mode}, input {input_shape}")
    for col in (
        "layer",
        "op",
        "shape",
        "kernel",
        "grid",
        "CTAs/SM",
        "waves",
        "tail fill",
        "us",
        "share",
        "tail waste us",
    ):
        table.add_column(col, justify="left" if col in ("layer", "op", "kernel") else "right", no_wrap=True)
    for layer in result.layers:
        name = layer.name + (f" +{len(layer.fused)}" if layer.fused else "")
        table.add_row(
            name,
            layer.op,
            "x".join(map(str, layer.shape)),
            layer.kernel,
            str(layer.grid),
            str(layer.ctas_per_sm),
            str(layer.waves),
            f"{layer.tail_fill:.2f}",
            f"{layer.latency_us:.1f}",
            f"{layer.latency_us / result.total_us:.1%}",
            f"{layer.tail_waste_us:.1f}",
        )
    gemm_kinds = "/".join(kind for kind, cls in OP_KINDS.items() if cls.gemm)  # what macs counts
    wide = Measurement.get(console, console.options.update_width(1000), table).maximum
    Console(width=max(console.width, wide)).print(table)  # never truncate layer or kernel names
    console.print(
        f"total {result.total_us:.1f} us in {len(result.layers)} launches (step {result.step_us:.1f} us as the "
        f"host sees it); "
        f"{result.flops / 1e9:.2f} GFLOPs ({result.macs / 1e9:.3f} GMACs in {gemm_kinds}); "
        f"tail waste {result.tail_waste_us:.1f} us ({result.tail_waste_us / result.total_us:.1%})"
    )
