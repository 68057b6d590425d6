"""Shared fixtures: where the shared measured data lives, and a CLI runner; property tests derandomized."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run: a failure reproduces, and CI's exit code depends on
# the code, not on the draw (a random draw found a 1-ulp float difference once, in a run that had passed before).
settings.register_profile("wavecut", derandomize=True)
settings.load_profile("wavecut")

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
