"""Load a model by torchvision name, `package.module:factory`, or a file saved with torch.save.

Model and weights files are read with `torch.load(weights_only=True)`: tensors, state_dicts and plain
containers only, so a crafted file cannot run code while it is read. A whole pickled model
(`torch.save(model)`, what `wavecut apply` writes) needs the unpickler that can run arbitrary code;
it is used only when the user passes --trust-model-file (TRUST_MODEL_FILES), which the CLI reports
with a warning line. TorchScript archives (torch.jit.save) are refused: they cannot be traced by
torch.fx, which the planner and predictor rely on.
"""

from __future__ import annotations

import importlib
import zipfile
from contextvars import ContextVar
from pathlib import Path

import torch
import torchvision
from torch import nn

from gpusim.errors import WavecutError
from gpusim.spec import looks_like_path

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
MODEL_SUFFIXES = (".pt", ".pth", ".pkl", ".bin", ".ckpt")  # names with these are files, never model names
TRUST_MODEL_FILES: ContextVar[bool] = ContextVar("trust_model_files", default=False)


def torchvision_names() -> list[str]:
    """Every torchvision classification model name."""
    return torchvision.models.list_models(module=torchvision.models)


def load_model(spec: str) -> nn.Module:
    """The model that `spec` names, in eval mode: a saved file, `package.module:factory` or a torchvision name.

    Only what looks like a path (a separator, a model-file suffix, or an existing regular file) is read
    as a file, so a directory named `resnet50` in the working directory does not shadow the built-in."""
    if not spec.strip():
        raise WavecutError("model: empty name; give a torchvision name, package.module:factory or a model file")
    if looks_like_path(spec, MODEL_SUFFIXES):
        model = _check_module(load_torch_file(Path(spec), "model file"), spec)
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


def load_torch_file(path: Path, what: str) -> object:
    """What torch.save wrote to `path`: weights-only unless TRUST_MODEL_FILES is set; one line for any failure."""
    if not path.is_file():
        raise WavecutError(f"{path}: no such {what}" if not path.exists() else f"{path}: not a regular file")
    if _is_torchscript(path):
        raise WavecutError(
            f"{path}: a TorchScript archive (torch.jit.save) cannot be traced by torch.fx; "
            f"save the eager model with torch.save, or name its package.module:factory"
        )
    if not _is_pickle(path):
        raise WavecutError(f"{path}: cannot load a {what} saved with torch.save (neither a zip archive nor a pickle)")
    trusted = TRUST_MODEL_FILES.get()
    try:
        return torch.load(path, map_location="cpu", weights_only=not trusted)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and torch errors all mean "not loadable"
        if not trusted and "Weights only load failed" in str(exc):
            raise WavecutError(
                f"{path}: holds pickled Python objects, not only tensors (e.g. a whole model saved with "
                f"torch.save(model)); unpickling them can run code, so it is refused. If you trust the file, "
                f"pass --trust-model-file"
            ) from None
        first = (str(exc).splitlines() or [""])[0][:200]
        raise WavecutError(
            f"{path}: cannot load a {what} saved with torch.save ({type(exc).__name__}: {first})"
        ) from None


def _is_torchscript(path: Path) -> bool:
    """A torch.jit.save archive: a zip whose record holds constants.pkl and the compiled code."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return any(n.split("/", 1)[-1] == "constants.pkl" for n in names)


def _is_pickle(path: Path) -> bool:
    """A torch.save zip archive or a legacy pickle (protocol 2+ starts with 0x80)."""
    with path.open("rb") as f:
        head = f.read(4)
    return head.startswith(b"PK") or head[:1] == b"\x80"


def _load_factory(spec: str) -> nn.Module:
    module_name, _, factory_name = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise WavecutError(f"{spec}: cannot import factory {factory_name!r} from {module_name!r} ({exc})") from None
    if not callable(factory):
        raise WavecutError(
            f"{spec}: {factory_name!r} is a {type(factory).__name__}, not a function that builds a model"
        )
    try:
        model = factory()
    except Exception as exc:  # noqa: BLE001 - the user's factory failed: report it, do not trace back into it
        first = (str(exc).splitlines() or [""])[0][:200]
        raise WavecutError(f"{spec}: calling the factory failed ({type(exc).__name__}: {first})") from None
    return _check_module(model, spec)


def _check_module(model: object, source: str) -> nn.Module:
    if isinstance(model, dict) and model and all(isinstance(v, torch.Tensor) for v in model.values()):
        raise WavecutError(
            f"{source}: holds a state_dict, not a model; name the architecture as the model and pass this file "
            f"as --weights"
        )
    if not isinstance(model, nn.Module):
        raise WavecutError(f"{source}: expected a torch.nn.Module, got {type(model).__name__}")
    return model
