"""Fuzz every file wavecut reads: GPU spec YAML, timing CSVs and plan files, mutated at random.

    python -m benchmarks.fuzz_inputs [--cases 2000] [--seed 0] [--json]

Each case starts from a valid file (hw_specs/devices/t4.yaml, a NeuSight row, a plan of a tiny conv
net) and applies one random mutation: a byte flipped, inserted or deleted, the file truncated, a
field's value replaced by a hostile scalar (bool, quoted number, .inf, a huge integer, a deep list),
a line duplicated (duplicate keys) or the text re-encoded as latin-1. The reader must either accept
the file or raise a WavecutError whose message is one line; any other exception is a failure.
Prints a table (input, cases, accepted, one-line errors, failures, seconds) and, with --json, one
JSON object as the last line. Exit code 1 on any failure. The pytest fuzz tests
(tests/test_hostile_specs.py, tests/test_hostile_csv.py) run a bounded version of the same idea.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gpusim.errors import WavecutError
from gpusim.spec import DEVICE_DIR, load_spec_file

HOSTILE = [
    "true",
    '"40"',
    ".inf",
    ".nan",
    "-1",
    "0",
    "999999999999999999999",
    "1e400",
    "[" * 200 + "]" * 200,
    "{a: 1, a: 2}",
    "~",
    "!!binary AAAA",
    "'",
    "\x00",
    "é",
]
CSV_HEADER = "OPName,Latency,Device,Kernel Name,Grid x,Grid y,Grid z,B,M,N,K\n"
CSV_ROW = "bmm,0.1117,Tesla V100-PCIE-32GB,volta_sgemm_32x128_nn,4,1,384,384,128,64,128\n"


def mutate(rng: random.Random, data: bytes, separator: bytes) -> bytes:
    """One random mutation of data (a text file whose fields are split by separator)."""
    kind = rng.randrange(6)
    if kind == 0 and data:  # flip a byte
        i = rng.randrange(len(data))
        return data[:i] + bytes([rng.randrange(256)]) + data[i + 1 :]
    if kind == 1:  # insert or delete a run of bytes
        i = rng.randrange(len(data) + 1)
        return data[:i] + rng.randbytes(rng.randrange(1, 8)) + data[i + rng.randrange(4) :]
    if kind == 2:  # truncate
        return data[: rng.randrange(len(data) + 1)]
    lines = data.split(b"\n")
    j = rng.randrange(len(lines))
    if kind == 3:  # replace one field's value with a hostile scalar
        head, sep, _ = lines[j].partition(separator)
        if sep:
            lines[j] = head + sep + rng.choice(HOSTILE).encode()
        return b"\n".join(lines)
    if kind == 4:  # duplicate a line (duplicate keys, repeated rows)
        lines.insert(j, lines[j])
        return b"\n".join(lines)
    return data.decode("utf-8", "replace").replace("T", "Té").encode("latin-1", "replace")


def _plan_bytes() -> bytes:
    """A valid plan file of a small model (made once per run)."""
    from planner.plan import make_plan

    plan = make_plan("resnet18", "t4", "0.7", 8, input_shape=(3, 32, 32))
    return plan.model_dump_json(indent=1).encode()


def run(name: str, seed_file: bytes, separator: bytes, read: Callable[[Path], object], cases: int, rng) -> dict:
    """Fuzz one reader: counts of accepted files, one-line errors and failures (with the first few)."""
    counts = {"accepted": 0, "errors": 0, "failures": 0}
    examples: list[str] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="wavecut-fuzz-") as scratch:
        for k in range(cases):
            path = (
                Path(scratch) / f"case{k}{'.yaml' if separator == b':' else '.csv' if separator == b',' else '.json'}"
            )
            path.write_bytes(mutate(rng, seed_file, separator))
            try:
                read(path)
                counts["accepted"] += 1
            except WavecutError as exc:
                if "\n" in str(exc):
                    counts["failures"] += 1
                    examples.append(f"multi-line error: {str(exc)[:120]!r}")
                else:
                    counts["errors"] += 1
            except Exception as exc:  # noqa: BLE001 - what the benchmark looks for
                counts["failures"] += 1
                examples.append(f"{type(exc).__name__}: {str(exc)[:120]}")
            path.unlink()
    return {"input": name, "cases": cases, **counts, "seconds": time.perf_counter() - start, "examples": examples[:5]}


def main() -> None:
    """Fuzz the three readers and print the table (and JSON)."""
    import warnings

    from planner.plan_model import Plan
    from validation.readers import read_timings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000, help="mutated files per input kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = _plan_bytes()
    rows = [
        run("spec yaml", (DEVICE_DIR / "t4.yaml").read_bytes(), b":", load_spec_file, args.cases, rng),
        run("timing csv", (CSV_HEADER + CSV_ROW * 3).encode(), b",", read_timings, args.cases, rng),
        run("plan json", plan, b": ", Plan.load, args.cases, rng),
    ]
    print(f"{'input':<12} {'cases':>7} {'accepted':>9} {'errors':>7} {'failures':>9} {'s':>7}")
    for r in rows:
        print(
            f"{r['input']:<12} {r['cases']:7d} {r['accepted']:9d} {r['errors']:7d} {r['failures']:9d} {r['seconds']:7.1f}"
        )
        for e in r["examples"]:
            print(f"    {e}")
    failures = sum(r["failures"] for r in rows)
    print(f"{failures} failures in {sum(r['cases'] for r in rows)} cases (seed {args.seed})")
    if args.json:
        print(json.dumps({"rows": rows, "failures": failures, "seed": args.seed}, allow_nan=False))
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
