"""GPU spec files shipped with wavecut (YAML data; see hw_specs/README.md)."""

from pathlib import Path

SPEC_ROOT = Path(__file__).resolve().parent
DEVICE_DIR = SPEC_ROOT / "devices"
CC_DIR = SPEC_ROOT / "compute_capability"
CALIBRATION_DIR = SPEC_ROOT / "calibration"
MEMORY_TYPES_FILE = SPEC_ROOT / "memory_types.yaml"
