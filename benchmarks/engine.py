"""Kernel predictions per second of the Numba engine vs the same model as plain Python (NUMBA_DISABLE_JIT=1).

Both paths run gpusim.engine.gemm_select (kernel selection over every tile and split-K
of the GPU's catalogue, then occupancy, waves and time) on identical inputs, on one core;
the plain-Python path runs in a subprocess with Numba's JIT disabled and its results
must equal the compiled ones.

    python3 -m benchmarks.engine [--gpu a100] [--count 200000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

from gpusim import load_spec  # noqa: E402
from gpusim.engine import gemm_select  # noqa: E402
from gpusim.predict import engine_inputs  # noqa: E402


def problems(count: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Random conv-as-GEMM shapes: M = batch*H*W, N = out channels, K = in channels * 9."""
    rng = np.random.default_rng(seed)
    m = rng.choice([1, 8, 32]) * rng.choice([49, 196, 784, 3136], size=count) * rng.integers(1, 33, size=count)
    n = rng.integers(1, 1025, size=count)
    k = rng.integers(1, 513, size=count) * 9
    batch = np.ones(count, dtype=np.int64)
    moved = (m * k + k * n + m * n) * 2.0
    return m.astype(np.int64), n.astype(np.int64), k.astype(np.int64), batch, moved


def run(gpu: str, total: int, count: int, dtype: str = "fp16") -> tuple[np.ndarray, float]:
    """Run the engine on the first `count` of `total` problems; (results stacked as float64, seconds)."""
    spec = load_spec(gpu)
    table, limits, device, consts = engine_inputs(spec, dtype)
    m, n, k, batch, moved = (a[:count] for a in problems(total))
    scale = np.ones(count)
    gemm_select(m[:2], n[:2], k[:2], batch[:2], moved[:2], scale[:2], 2, table, limits, device, consts, True)  # warm
    start = time.perf_counter()
    out = gemm_select(m, n, k, batch, moved, scale, 2, table, limits, device, consts, True)
    seconds = time.perf_counter() - start
    return np.vstack([np.asarray(o, dtype=np.float64) for o in out]), seconds


def main() -> None:
    """Time both paths, check they agree, print a table (and one JSON object last with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", default="a100")
    parser.add_argument("--count", type=int, default=200_000, help="problems for the Numba path")
    parser.add_argument("--python-count", type=int, default=2_000, help="problems for the plain-Python path")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # plain-Python run, in a subprocess with NUMBA_DISABLE_JIT=1
        result, seconds = run(args.gpu, args.count, args.python_count)
        np.save(args.child, result)
        print(seconds)
        return
    fast, fast_s = run(args.gpu, args.count, args.count)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "py.npy"
        env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--gpu",
                args.gpu,
                "--count",
                str(args.count),
                "--python-count",
                str(args.python_count),
                "--child",
                str(out),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        slow_s = float(proc.stdout.strip().splitlines()[-1])
        slow = np.load(out)
    equal = bool(np.allclose(fast[:, : args.python_count], slow, rtol=1e-12, atol=0))
    tiles = engine_inputs(load_spec(args.gpu), "fp16")[0].shape[0]
    result = {
        "gpu": args.gpu,
        "tiles_per_problem": tiles,
        "numba_predictions_per_s": args.count / fast_s,
        "python_predictions_per_s": args.python_count / slow_s,
        "speedup": (args.count / fast_s) / (args.python_count / slow_s),
        "results_equal": equal,
    }
    print(f"{'path':<14}{'problems':>10}{'seconds':>10}{'predictions/s':>16}")
    print(f"{'numba':<14}{args.count:>10}{fast_s:>10.3f}{result['numba_predictions_per_s']:>16,.0f}")
    print(f"{'plain python':<14}{args.python_count:>10}{slow_s:>10.3f}{result['python_predictions_per_s']:>16,.0f}")
    print(
        f"speedup {result['speedup']:.0f}x; results equal: {equal}; each prediction selects among "
        f"{tiles} tiles x split-K options"
    )
    if args.json:
        print(json.dumps(result))
    if not equal:
        sys.exit(1)


if __name__ == "__main__":
    main()
