"""Shared fixtures: where the shared measured data lives, and a CLI runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MEASURED = SHARED / "data" / "measured"


@pytest.fixture
def measured_dir() -> Path:
    """../shared/data/measured, or skip with the reason when it is absent."""
    if not MEASURED.is_dir():
        pytest.skip(f"recorded GPU timings not found at {MEASURED} (../shared is absent in this checkout)")
    return MEASURED


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run `wavecut ARGS` in a subprocess and capture its output."""
    return subprocess.run([sys.executable, "-m", "wavecut.cli", *args], capture_output=True, text=True, cwd=REPO)
