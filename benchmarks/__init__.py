"""Benchmark scripts: run them as modules from the repository root, e.g. `python3 -m benchmarks.planner --json`."""
