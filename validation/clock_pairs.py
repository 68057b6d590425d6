"""The clock a GPU ran its long kernels at, read off the shared data without the model.

A row of one op that ran the same kernel (recorded name) on two GPUs did the same work per FP32 lane on
both, so where it is long enough for its compute to dominate, its time scales as 1 / (lanes x clock).
Against a reference GPU whose clock is known, each such pair gives the other GPU's clock:

    clock = reference clock x (reference lanes / lanes) x reference time / time

The reference is the V100 PCIe: its SGEMMs reach 99% of the FP32 peak at its rated 1380 MHz, so it holds
that clock. The T4 runs the V100's cuBLAS and cuDNN kernels (their volta_* names), so its pairs measure
its clock per kind of op, against the one CUDA-core clock the sustained-clock rule gives it
(gpusim.spec.unit_clock; docs/accuracy.md, "Sustained clocks": its linears and convs disagree).

With --by-kernel the pairs are grouped per recorded kernel too: the T4 runs cuBLAS's 128x64 SGEMM at a lower
clock-equivalent than its 128x128 one on the same launches (docs/accuracy.md, "Where the targets are missed").

    python3 -m validation.clock_pairs [--by-kernel] [--json]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from gpusim.spec import load_spec
from validation.calibrate import shared_timing_files
from validation.readers import Measurement, read_timings

REFERENCE_GPU = "Tesla V100-PCIE-32GB"
# Rows shorter than this are left out: their host overhead and launch latency do not scale with the clock.
MIN_ROW_US = 2000.0
# (GPU, op) cells with fewer pairs are left out (the T4's two bmm pairs say nothing).
MIN_PAIRS = 20


def implied_clocks(
    paths: list[Path], reference: str = REFERENCE_GPU, by_kernel: bool = False
) -> dict[tuple[str, ...], np.ndarray]:
    """Per (GPU, op kind), or (GPU, op kind, kernel) with `by_kernel`: the clock (MHz) each row that ran the
    same kernel as on `reference` implies."""
    by_op: dict[object, dict[str, Measurement]] = defaultdict(dict)
    for path in paths:
        for m in read_timings(path).measurements:
            if m.dtype == "fp32" and m.kernel:
                by_op[m.op][m.device] = m
    ref_spec = load_spec(reference)
    ref_lanes = ref_spec.sm_count * ref_spec.fp32_lanes_per_sm
    out: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for op, by_gpu in by_op.items():
        ref = by_gpu.get(reference)
        if ref is None or ref.latency_us < MIN_ROW_US:
            continue
        for gpu, m in by_gpu.items():
            if gpu == reference or m.kernel != ref.kernel or m.latency_us < MIN_ROW_US:
                continue
            spec = load_spec(gpu)  # cached by load_spec
            lanes = ref_lanes / (spec.sm_count * spec.fp32_lanes_per_sm)
            key = (gpu, op.kind, m.kernel) if by_kernel else (gpu, op.kind)
            out[key].append(ref_spec.sustained_clock_mhz * lanes * ref.latency_us / m.latency_us)
    return {key: np.array(v) for key, v in sorted(out.items()) if len(v) >= MIN_PAIRS}


def table(clocks: dict[tuple[str, ...], np.ndarray]) -> list[dict]:
    """One row per key of `clocks` (GPU, op kind and, if grouped so, kernel): pairs, the implied clock's
    quartiles and the CUDA-core clock of its spec."""
    result = []
    for (gpu, kind, *kernel), mhz in clocks.items():
        spec_mhz = load_spec(gpu).sustained_clock_mhz
        p25, p50, p75 = np.percentile(mhz, [25, 50, 75])
        result.append(
            {
                "gpu": gpu,
                "op": kind,
                **({"kernel": kernel[0]} if kernel else {}),
                "pairs": int(mhz.size),
                "implied_mhz_p25": float(p25),
                "implied_mhz_median": float(p50),
                "implied_mhz_p75": float(p75),
                "spec_mhz": float(spec_mhz),
            }
        )
    return result


def main() -> None:
    """Print the table (and one JSON object last with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--by-kernel", action="store_true", help="one row per GPU, op and recorded kernel")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = table(implied_clocks(shared_timing_files(), by_kernel=args.by_kernel))
    print(f"same kernel as the {REFERENCE_GPU}, rows >= {MIN_ROW_US:g} us")
    width = max([len(r.get("kernel", "")) for r in rows] + [0])
    print(
        f"{'GPU':24s}{'op':8s}{'kernel' if width else '':{width}s}{'pairs':>6s}{'p25 MHz':>9s}{'median':>8s}{'p75':>7s}{'spec MHz':>10s}"
    )
    for r in rows:
        print(
            f"{r['gpu']:24s}{r['op']:8s}{r.get('kernel', ''):{width}s}{r['pairs']:6d}{r['implied_mhz_p25']:9.0f}"
            f"{r['implied_mhz_median']:8.0f}{r['implied_mhz_p75']:7.0f}{r['spec_mhz']:10.0f}"
        )
    if args.json:
        print(json.dumps({"reference": REFERENCE_GPU, "min_row_us": MIN_ROW_US, "rows": rows}))


if __name__ == "__main__":
    main()
