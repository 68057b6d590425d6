"""Calibration data for Taylor importance, compensation and BatchNorm re-estimation.

`--calibration-data` is a folder of images (resized to the input shape, ImageNet-normalised), a `.pt` file
(a tensor of inputs, or a dict with `x` and optionally `y`, or an `(x, y)` tuple), or nothing: then a
deterministic synthetic batch of smooth random images (planner.importance.synthetic_batch) is used, labelled
`synthetic` wherever it is reported, since statistics from it are not those of real data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from gpusim.errors import WavecutError

DEFAULT_SAMPLES = 8
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Calibration:
    """Calibration inputs (N, *input_shape), optional labels, and where they came from."""

    x: torch.Tensor
    labels: torch.Tensor | None
    source: str  # a path, or "synthetic"


def load_calibration(
    path: str | Path | None, input_shape: Sequence[int], samples: int = DEFAULT_SAMPLES, seed: int = 0
) -> Calibration:
    """The calibration batch `path` names (see the module doc), at most `samples` inputs of `input_shape`."""
    shape = tuple(input_shape)
    if path is None:
        from planner.importance.signatures import synthetic_batch

        return Calibration(synthetic_batch(shape, samples, seed), None, "synthetic")
    p = Path(path)
    if p.is_dir():
        return Calibration(_images(p, shape, samples), None, str(p))
    if not p.exists():
        raise WavecutError(f"--calibration-data: {path}: no such file or folder")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise WavecutError(f"--calibration-data: {path}: not a .pt tensor file ({type(exc).__name__})") from None
    x, y = data, None
    if isinstance(data, dict):
        x, y = data.get("x"), data.get("y")
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != shape:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise WavecutError(
            f"--calibration-data: {path}: expected a tensor of shape (N, {', '.join(map(str, shape))}) "
            f"(or a dict with 'x' and 'y', or an (x, y) tuple), got {got}"
        )
    if y is not None and (not isinstance(y, torch.Tensor) or y.shape[:1] != x.shape[:1]):
        raise WavecutError(f"--calibration-data: {path}: labels 'y' must be a tensor with one label per input")
    return Calibration(x[:samples].float(), None if y is None else y[:samples].long(), str(p))


def _images(folder: Path, shape: tuple[int, ...], samples: int) -> torch.Tensor:
    """Up to `samples` images of `folder` (sorted by name), resized to `shape` and ImageNet-normalised."""
    from torchvision.io import ImageReadMode, read_image

    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)[:samples]
    if not files:
        raise WavecutError(f"--calibration-data: {folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise WavecutError(f"--calibration-data: images need a 1x or 3xHxW input, not {'x'.join(map(str, shape))}")
    mode = ImageReadMode.RGB if shape[0] == 3 else ImageReadMode.GRAY
    batch = []
    for f in files:
        try:
            image = read_image(str(f), mode).float() / 255.0
        except RuntimeError as exc:
            raise WavecutError(f"--calibration-data: {f}: cannot read the image ({exc})") from None
        batch.append(F.interpolate(image[None], size=shape[1:], mode="bilinear", align_corners=False)[0])
    x = torch.stack(batch)
    if shape[0] == 3:
        x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return x
