"""Functionality signatures: one vector per output channel describing what the channel does.

Two kinds sit behind :func:`compute_signatures`:

* ``"response"``: what inputs the channel responds to. The layer's output on a calibration
  batch is average-pooled to a coarse grid and each channel's response vector is centred and
  unit-normalised, so two channels that differ only by scale or bias (which a following
  BatchNorm absorbs) get the same signature. One forward pass serves every layer.
* ``"actmax"``: activation maximisation as in Qin et al. (arXiv 1810.07322): the input pattern
  that excites the channel most, found by regularised gradient ascent from one shared noise
  image. Needs no data, but costs ``steps`` forward/backward passes per layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from rich.progress import Progress
from torch import nn

SignatureKind = Literal["response", "actmax"]
PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.modules.conv._ConvNd, nn.Linear)


class _Captured(Exception):
    """Raised by a forward hook to stop the pass once every wanted output is captured."""


def prunable_modules(model: nn.Module) -> list[nn.Module]:
    """Conv and linear layers of ``model``, in registration order."""
    return [m for m in model.modules() if isinstance(m, PRUNABLE_TYPES)]


def out_channels(module: nn.Module) -> int:
    """Number of output channels (conv) or output features (linear)."""
    return module.out_features if isinstance(module, nn.Linear) else module.out_channels


def _device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter."""
    return next(model.parameters()).device


def infer_input_shape(model: nn.Module, size: int = 64) -> tuple[int, ...]:
    """Per-sample input shape guessed from the first layer: ``(C, size, size)`` for Conv2d."""
    first = prunable_modules(model)[0]
    if isinstance(first, nn.Linear):
        return (first.in_features,)
    spatial_dims = first.weight.dim() - 2
    return (first.in_channels, *([size] * spatial_dims))


def synthetic_batch(input_shape: Sequence[int], n: int = 16, seed: int = 0) -> torch.Tensor:
    """Deterministic smooth random inputs (noise at three scales, upsampled and summed), standardised."""
    generator = torch.Generator().manual_seed(seed)
    shape = (n, *input_shape)
    if len(input_shape) < 2:
        return torch.randn(shape, generator=generator)
    batch = torch.zeros(shape)
    for coarse in (2, 4, 8):
        grid = [max(1, s // coarse) for s in input_shape[1:]]
        noise = torch.randn((n, input_shape[0], *grid), generator=generator)
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(grid)]
        batch += F.interpolate(noise, size=tuple(input_shape[1:]), mode=mode, align_corners=False)
    return (batch - batch.mean()) / batch.std()


def capture(
    model: nn.Module,
    modules: Sequence[nn.Module],
    inputs: torch.Tensor,
    at: Literal["output", "input"] = "output",
    transform: Callable[[torch.Tensor], torch.Tensor] = lambda t: t,
    forward: Callable[[torch.Tensor], object] | None = None,
) -> dict[nn.Module, torch.Tensor]:
    """``transform`` of every module's output (or input) on ``inputs``; the pass stops once all are captured.
    ``forward`` runs the pass (default: ``model`` itself; planner.importance.resume resumes one part-way)."""
    captured: dict[nn.Module, torch.Tensor] = {}
    wanted = set(modules)
    done: set[nn.Module] = set()

    def record(module: nn.Module, args: tuple, *output: torch.Tensor) -> None:
        captured[module] = transform(output[0] if output else args[0])

    def finish(module: nn.Module, _args: tuple, _output: torch.Tensor) -> None:
        done.add(module)
        if done == wanted:
            raise _Captured

    register = "register_forward_hook" if at == "output" else "register_forward_pre_hook"
    handles = [getattr(m, register)(record) for m in wanted]
    handles += [m.register_forward_hook(finish) for m in wanted]
    try:
        (model if forward is None else forward)(inputs)
    except _Captured:
        pass
    finally:
        for handle in handles:
            handle.remove()
    missing = wanted - captured.keys()
    if missing:
        raise RuntimeError(f"{len(missing)} module(s) never ran in the forward pass")
    return captured


def _centre_and_normalise(rows: torch.Tensor) -> torch.Tensor:
    """Subtract each row's mean and scale it to unit L2 norm (constant rows become zero)."""
    rows = rows - rows.mean(dim=1, keepdim=True)
    return rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _per_channel(output: torch.Tensor, cells: int) -> torch.Tensor:
    """``[N, C, *spatial]`` -> ``[C, N * cells**d]`` after pooling to a ``cells`` grid."""
    if output.dim() > 2:
        pool = {3: F.adaptive_avg_pool1d, 4: F.adaptive_avg_pool2d, 5: F.adaptive_avg_pool3d}
        output = pool[output.dim()](output, cells)
    return output.transpose(0, 1).flatten(1)


@torch.no_grad()
def response_signatures(
    model: nn.Module,
    modules: Sequence[nn.Module],
    calibration: torch.Tensor,
    cells: int = 4,
    at: Literal["output", "input"] = "output",
) -> dict[nn.Module, torch.Tensor]:
    """Response signature ``[C, N * cells**d]`` of every module's output (or input), from one forward pass.

    ``at="input"`` describes what a layer *reads*: the channels of its input, i.e. the previous
    layer's response after BatchNorm, activation and pooling (one row per input channel or feature).
    """
    pooled = capture(model, modules, calibration, at, lambda t: _per_channel(t.float(), cells))
    return {m: _centre_and_normalise(pooled[m]).cpu() for m in modules}


def _blur(x: torch.Tensor) -> torch.Tensor:
    """3-wide box blur over the spatial dims of a 2-D image batch (identity otherwise)."""
    if x.dim() != 4:
        return x
    kernel = torch.full((x.shape[1], 1, 3, 3), 1.0 / 9.0, dtype=x.dtype, device=x.device)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])


@torch.enable_grad()
def _ascend(
    model: nn.Module,
    module: nn.Module,
    channels: torch.Tensor,
    start: torch.Tensor,
    steps: int,
    lr: float,
    weight_decay: float,
    blur_every: int,
    advance: Callable[[], None],
) -> torch.Tensor:
    """Gradient ascent on one input per channel in ``channels``; returns the final inputs."""
    x = start.expand(len(channels), *start.shape[1:]).clone()
    rows = torch.arange(len(channels))
    for step in range(steps):
        x.requires_grad_(True)
        output = capture(model, [module], x)[module]
        activation = output[rows, channels].reshape(len(channels), -1).mean(dim=1).sum()
        (grad,) = torch.autograd.grad(activation, x)
        with torch.no_grad():
            scale = grad.flatten(1).abs().mean(dim=1).clamp_min(1e-12)
            grad = grad / scale.view(-1, *[1] * (x.dim() - 1))
            x = (x + lr * grad) * (1.0 - weight_decay)
            if blur_every and (step + 1) % blur_every == 0:
                x = _blur(x)
        advance()
    return x.detach()


def actmax_signatures(
    model: nn.Module,
    modules: Sequence[nn.Module],
    input_shape: Sequence[int],
    steps: int = 48,
    lr: float = 0.05,
    weight_decay: float = 0.01,
    blur_every: int = 4,
    chunk: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> dict[nn.Module, torch.Tensor]:
    """Activation-maximisation signature ``[C, prod(input_shape)]`` of every module.

    Every channel starts from the same small noise image and follows normalised gradient ascent
    with L2 decay and periodic blurring (the regularisers); the resulting pattern, centred and
    unit-normalised, is the channel's signature. Channels are processed ``chunk`` at a time.
    """
    generator = torch.Generator().manual_seed(seed)
    start = 0.1 * torch.randn((1, *input_shape), generator=generator).to(_device(model))
    total = sum(-(-out_channels(m) // chunk) * steps for m in modules)
    result: dict[nn.Module, torch.Tensor] = {}
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("activation maximisation", total=total)
        for module in modules:
            patterns = [
                _ascend(model, module, channels, start, steps, lr, weight_decay, blur_every, lambda: bar.advance(task))
                for channels in torch.arange(out_channels(module)).split(chunk)
            ]
            result[module] = _centre_and_normalise(torch.cat(patterns).flatten(1)).cpu()
    return result


def compute_signatures(
    model: nn.Module,
    modules: Sequence[nn.Module],
    kind: SignatureKind = "response",
    calibration: torch.Tensor | None = None,
    input_shape: Sequence[int] | None = None,
    progress: bool = True,
    at: Literal["output", "input"] = "output",
) -> dict[nn.Module, torch.Tensor]:
    """Signature matrix ``[out_channels, D]`` (rows unit-norm) for each module, of either kind.

    ``at="input"`` (response only) gives one row per *input* channel instead: what the module
    reads, see :func:`response_signatures`.

    The model is evaluated in eval mode and restored afterwards. Without ``calibration`` the
    response signature uses :func:`synthetic_batch` (16 smooth random inputs of ``input_shape``,
    itself inferred from the first layer when omitted); actmax needs only the input shape,
    taken from ``calibration`` when given.
    """
    if input_shape is None:
        input_shape = tuple(calibration.shape[1:]) if calibration is not None else infer_input_shape(model)
    was_training = model.training
    model.eval()
    try:
        if kind == "response":
            batch = calibration if calibration is not None else synthetic_batch(input_shape)
            return response_signatures(model, modules, batch.to(_device(model)), at=at)
        if kind == "actmax" and at == "output":
            return actmax_signatures(model, modules, input_shape, progress=progress)
        raise ValueError(f"unknown signature kind {kind!r} at {at!r}; use 'response', or 'actmax' at 'output'")
    finally:
        model.train(was_training)
