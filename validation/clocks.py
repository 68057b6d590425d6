"""The GPU's SM clock and board power while ops are timed: a sampler on a background thread.

Power-limited cards (T4, L4) run far below their boost clock under sustained math, by
an amount that depends on the kernel, and the simulator's one `sustained_clock_mhz` per
spec is only as good as the evidence behind it. `wavecut validate measure` records, per
row, the median SM clock and board power over that row's timed repeats;
`wavecut validate clocks` (validation/clock_summary.py) reads them back.

NVML is read through `pynvml` (the nvidia-ml-py package, in the `torch` extra) when it
loads, else through `nvidia-smi --query-gpu` (a process per sample, every 0.1 s,
so rows timed for less than that may get no sample and an empty cell). No torch here.
"""

from __future__ import annotations

import math
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable

Reading = tuple[float, float]  # SM clock in MHz, board power in W (nan where the board does not report it)
Reader = Callable[[], "Reading | None"]

# Pause between two samples: NVML answers in well under a millisecond (a ctypes call, which releases
# the GIL, so the timing loop is barely disturbed); each nvidia-smi sample is a process, so it polls slower.
POLL_SECONDS = 0.005
SMI_POLL_SECONDS = 0.1


class ClockSampler:
    """Polls `reader` on a background thread (as a context manager) and keeps timed samples."""

    def __init__(self, reader: Reader, poll_s: float = POLL_SECONDS):
        self._reader, self._poll_s = reader, poll_s
        self._samples: list[tuple[float, float, float]] = []  # (time.monotonic(), MHz, W)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clock-sampler", daemon=True)

    def __enter__(self) -> ClockSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            before = time.monotonic()
            reading = self._reader()
            if reading is not None:  # stamped at the middle of the read: nvidia-smi takes tens of ms
                self.add((before + time.monotonic()) / 2.0, *reading)
            self._stop.wait(self._poll_s)

    def add(self, when: float, clock_mhz: float, power_w: float) -> None:
        """Keep one sample taken at `when` (time.monotonic() seconds)."""
        with self._lock:
            self._samples.append((when, clock_mhz, power_w))

    def window(self, start: float, end: float) -> tuple[float | None, float | None]:
        """Median SM clock (MHz) and board power (W) of the samples taken in [start, end] (None, None
        without one). Samples up to `end` are then dropped: windows are asked for in time order."""
        with self._lock:
            inside = [s for s in self._samples if start <= s[0] <= end]
            self._samples = [s for s in self._samples if s[0] > end]
        clocks = [s[1] for s in inside]
        powers = [s[2] for s in inside if math.isfinite(s[2])]
        return (statistics.median(clocks) if clocks else None), (statistics.median(powers) if powers else None)


def parse_smi(text: str) -> Reading | None:
    """One `nvidia-smi --query-gpu=clocks.sm,power.draw --format=csv,noheader,nounits` line, e.g.
    '1590, 69.52', as (MHz, W); power nan when '[N/A]'; None without a clock."""
    parts = [p.strip() for p in text.strip().splitlines()[0].split(",")] if text.strip() else []
    if len(parts) != 2:
        return None
    try:
        clock = float(parts[0])
    except ValueError:
        return None
    try:
        power = float(parts[1])
    except ValueError:
        power = math.nan
    return clock, power


def nvml_reader(gpu_id: str) -> Reader | None:
    """A reader over NVML for the GPU with this UUID ('GPU-...') or index; None if NVML does not load."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        if gpu_id.startswith("GPU-"):
            handle = pynvml.nvmlDeviceGetHandleByUUID(gpu_id)
        else:
            handle = pynvml.nvmlDeviceGetHandleByIndex(int(gpu_id))
    except pynvml.NVMLError:
        return None

    def read() -> Reading | None:
        try:
            clock = float(pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM))
        except pynvml.NVMLError:
            return None
        try:
            return clock, pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
        except pynvml.NVMLError:  # boards without power readings
            return clock, math.nan

    return read


def smi_reader(gpu_id: str) -> Reader | None:
    """A reader that runs nvidia-smi for the GPU with this UUID or index; None without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    command = ["nvidia-smi", "-i", gpu_id, "--query-gpu=clocks.sm,power.draw", "--format=csv,noheader,nounits"]

    def read() -> Reading | None:
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=5, check=True).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        return parse_smi(out)

    return read


def sampler_for(gpu_id: str) -> ClockSampler | None:
    """A sampler for this GPU over NVML, else nvidia-smi; None when neither can read it."""
    reader = nvml_reader(gpu_id)
    if reader is not None:
        return ClockSampler(reader, POLL_SECONDS)
    reader = smi_reader(gpu_id)
    return None if reader is None else ClockSampler(reader, SMI_POLL_SECONDS)
