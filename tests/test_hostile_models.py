"""Hostile model and weights files: loading never runs code from a file unless --trust-model-file says so,
and every file that cannot be used (TorchScript, garbage, a state_dict, a constant named as a factory)
is one error line and exit code 2."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from planner.models import TRUST_MODEL_FILES, load_model
from tests.hostile import assert_refused, run_main

NOT_A_FACTORY = 42  # named as `tests.test_hostile_models:NOT_A_FACTORY` below


class Tiny(nn.Module):
    """A one-conv model small enough to trace in milliseconds."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).relu()


def broken_factory() -> nn.Module:
    """A factory that fails the way user code does."""
    raise KeyError("no such variant")


class _Evil:
    """Unpickling this runs `touch <marker>`: what a crafted model file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _saved(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _untrusted():
    """Each test starts, and leaves the next one, without --trust-model-file."""
    token = TRUST_MODEL_FILES.set(False)
    yield
    TRUST_MODEL_FILES.reset(token)


PREDICT = ["predict", "--gpu", "t4", "--batch", "1", "--input", "3x16x16", "--json"]


def _predict(model: str) -> list[str]:
    return [PREDICT[0], model, *PREDICT[1:]]


@pytest.mark.parametrize("zipped", [False, True])
def test_crafted_pickle_runs_no_code(tmp_path, capsys, monkeypatch, zipped):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    if zipped:
        torch.save(_Evil(marker), evil)
    else:
        evil.write_bytes(pickle.dumps(_Evil(marker)))
    assert_refused(_predict(str(evil)), capsys, monkeypatch, tmp_path, "--trust-model-file", "refused")
    weights = ["plan", "resnet18", "--weights", str(evil), "--out", str(tmp_path / "plan.json")]
    assert_refused(weights, capsys, monkeypatch, tmp_path, "--trust-model-file")
    assert not marker.exists()


def test_whole_model_needs_trust_and_says_so(tmp_path, capsys, monkeypatch):
    path = tmp_path / "tiny.pt"
    torch.save(Tiny(), path)
    assert_refused(_predict(str(path)), capsys, monkeypatch, tmp_path, "pickled Python objects")
    code, out, err = run_main([*_predict(str(path)), "--trust-model-file"], capsys, monkeypatch)
    assert code == 0, err
    assert err.startswith("wavecut: warning: --trust-model-file") and len(err.strip().splitlines()) == 1
    assert '"total_us"' in out


def test_torchscript_is_refused(tmp_path, capsys, monkeypatch):
    path = tmp_path / "scripted.pt"
    with pytest.warns(FutureWarning):
        torch.jit.save(torch.jit.script(Tiny()), path)
    assert_refused(_predict(str(path)), capsys, monkeypatch, tmp_path, "TorchScript archive")
    code, _, err = run_main([*_predict(str(path)), "--trust-model-file"], capsys, monkeypatch)
    warning, error = err.strip().splitlines()  # trusting the file changes nothing: still refused
    assert code == 2 and warning.startswith("wavecut: warning:") and "TorchScript archive" in error


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (os.urandom(64), "cannot load a model file"),
        (b"", "cannot load a model file"),
        (_saved(42), "expected a torch.nn.Module, got int"),
        (_saved({"a": "b"}), "expected a torch.nn.Module, got dict"),
    ],
)
def test_unusable_files_are_one_line(tmp_path, capsys, monkeypatch, content, needle):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    assert_refused(_predict(str(path)), capsys, monkeypatch, tmp_path, str(path), needle)


def test_state_dict_given_as_the_model(tmp_path, capsys, monkeypatch):
    path = tmp_path / "weights.pth"
    torch.save(Tiny().state_dict(), path)
    assert_refused(_predict(str(path)), capsys, monkeypatch, tmp_path, "holds a state_dict", "--weights")


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("tests.test_hostile_models:NOT_A_FACTORY", "is a int, not a function"),
        ("tests.test_hostile_models:broken_factory", "calling the factory failed (KeyError"),
        ("tests.test_hostile_models:missing", "cannot import factory"),
        ("no_such_package.models:build", "cannot import factory"),
        (":", "cannot import factory"),
        ("", "model: empty name"),
        ("./missing.pt", "no such model file"),
    ],
)
def test_bad_model_names_are_one_line(tmp_path, capsys, monkeypatch, spec, needle):
    monkeypatch.chdir(tmp_path)
    assert_refused(_predict(spec), capsys, monkeypatch, tmp_path, needle)


def test_a_directory_named_like_a_model_does_not_shadow_it(tmp_path, monkeypatch):
    (tmp_path / "resnet18").mkdir()
    (tmp_path / "squeezenet1_0").mkdir()
    monkeypatch.chdir(tmp_path)
    assert type(load_model("resnet18")).__name__ == "ResNet"
    assert type(load_model("squeezenet1_0")).__name__ == "SqueezeNet"
