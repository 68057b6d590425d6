"""Load a model by torchvision name, `package.module:factory`, or a file saved with torch.save."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
import torchvision
from torch import nn

from gpusim.errors import WavecutError

# The torchvision models wavecut is checked on (any torchvision classification model name works).
TORCHVISION_MODELS = (
    "resnet18",
    "resnet50",
    "resnet101",
    "vgg16",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "regnet_y_400mf",
    "convnext_tiny",
    "vit_b_16",
)


def torchvision_names() -> list[str]:
    """Every torchvision classification model name."""
    return torchvision.models.list_models(module=torchvision.models)


def load_model(spec: str) -> nn.Module:
    """The model that `spec` names, in eval mode: a saved file, `package.module:factory` or a torchvision name."""
    path = Path(spec)
    if path.exists():
        model = _load_file(path)
    elif ":" in spec:
        model = _load_factory(spec)
    elif spec in torchvision_names():
        model = torchvision.models.get_model(spec, weights=None)
    else:
        raise WavecutError(
            f"unknown model {spec!r}; allowed: a torchvision name ({', '.join(TORCHVISION_MODELS)}, "
            f"...), package.module:factory, or a file saved with torch.save"
        )
    return model.eval()


def _load_file(path: Path) -> nn.Module:
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a loadable model file"
        raise WavecutError(f"{path}: cannot load a model saved with torch.save ({type(exc).__name__}: {exc})") from None
    return _check_module(model, str(path))


def _load_factory(spec: str) -> nn.Module:
    module_name, _, factory_name = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as exc:
        raise WavecutError(f"{spec}: cannot import factory {factory_name!r} from {module_name!r} ({exc})") from None
    return _check_module(factory(), spec)


def _check_module(model: object, source: str) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise WavecutError(f"{source}: expected a torch.nn.Module, got {type(model).__name__}")
    return model
