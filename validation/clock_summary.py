"""What the SM clocks recorded while timing say about a spec's sustained clock (`wavecut validate clocks`).

Only rows that kept the GPU busy count: an op timed for at least SUSTAINED_US per call runs
its repeats back to back, while shorter ones leave the GPU idle between launches for the
host's share of each call, and a power-limited card clocks higher when it idles. The
suggested clock is the median over those rows, per device in the file.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

import numpy as np
from pydantic import BaseModel

from validation.readers import DataError, Measurement, Timings
from validation.score import resolve_specs

# A timed call at least this long (us) keeps the GPU busy: host overhead is a few percent of it.
SUSTAINED_US = 1000.0


class ClockGroup(BaseModel):
    """Recorded SM clocks of the sustained rows of one device, dtype and op kind, in MHz."""

    device: str
    dtype: str
    op: str
    rows: int
    median_mhz: float
    p10_mhz: float
    p90_mhz: float


class DeviceClocks(BaseModel):
    """One device of the file: its spec's clocks and the sustained clock the recordings suggest."""

    device: str
    spec_path: str
    boost_mhz: float
    spec_sustained_mhz: float
    sustained_rows: int
    suggested_sustained_mhz: float | None  # None when no row ran long enough


class ClockReport(BaseModel):
    """Per device and per (device, dtype, op) group."""

    devices: list[DeviceClocks]
    groups: list[ClockGroup]


def _group(device: str, dtype: str, op: str, clocks: list[float]) -> ClockGroup:
    return ClockGroup(
        device=device,
        dtype=dtype,
        op=op,
        rows=len(clocks),
        median_mhz=statistics.median(clocks),
        p10_mhz=float(np.percentile(clocks, 10)),
        p90_mhz=float(np.percentile(clocks, 90)),
    )


def summarize_clocks(timings: Timings, gpu: str | None = None) -> ClockReport:
    """The recorded clocks of a project timing file against each device's spec (`gpu`: one spec for all)."""
    clocked = [m for m in timings.measurements if m.sm_clock_mhz is not None]
    if not clocked:
        raise DataError(
            f"{timings.path}: no row records sm_clock_mhz; rows timed by `wavecut validate measure` "
            f"on a GPU with NVML (nvidia-ml-py) or nvidia-smi record it"
        )
    specs = resolve_specs(timings, gpu)
    sustained: dict[str, list[Measurement]] = defaultdict(list)
    by_group: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for m in clocked:
        if m.latency_us >= SUSTAINED_US and m.timing == "op_wall":  # the profiled pass idles between calls
            sustained[m.device].append(m)
            by_group[(m.device, m.dtype, m.op.kind)].append(float(m.sm_clock_mhz))
    devices = []
    for device in dict.fromkeys(m.device for m in clocked):
        spec, rows = specs[device], sustained[device]
        devices.append(
            DeviceClocks(
                device=device,
                spec_path=spec.path,
                boost_mhz=spec.device.boost_clock_mhz,
                spec_sustained_mhz=spec.sustained_clock_mhz,
                sustained_rows=len(rows),
                suggested_sustained_mhz=statistics.median(m.sm_clock_mhz for m in rows) if rows else None,
            )
        )
    return ClockReport(devices=devices, groups=[_group(*key, clocks) for key, clocks in sorted(by_group.items())])
