#!/usr/bin/env bash
# One call on a lent GPU machine (the session tool `device`): time sweeps with `wavecut validate run`
# (two rows per op: CUDA events `op_wall` and the profiler's kernel sum `gpu_kernel`, SM clock and board power
# on each), and leave one archive plus the log in $OUT.
# How to prepare the wheels and bring the archive home: validation/README.md, "Recording on a lent GPU".
#
#   bash validation/device_session.sh DTYPE SWEEPS      e.g.  bash validation/device_session.sh fp32 linear,conv3x3
#
# The machine's python3 has torch, numba, networkx, PyYAML, typer, rich, matplotlib, scipy and
# nvidia-ml-py, but not pydantic: carry .whl/ (pydantic and its needs), which this script installs.
# WAVECUT_RUN_ARGS adds options to `validate run` (the tests dry-run this script with "--device cpu --gpu t4").
set -euo pipefail
dtype=${1:?first argument: the dtype to time, e.g. fp32}
sweeps=${2:?second argument: a comma list of sweeps, e.g. linear,conv3x3}
out=${OUT:?OUT is unset: run this through the device tool, which sets it}

export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD"
fi
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,clocks.max.mem --format=csv \
  >"$out/nvidia-smi.csv" 2>&1 || echo "nvidia-smi did not answer" >"$out/nvidia-smi.csv"
run=$(mktemp -d)
read -r -a extra <<<"${WAVECUT_RUN_ARGS:-}"
python3 -m wavecut.cli validate run --dtype "$dtype" --sweeps "$sweeps" --out-dir "$run" "${extra[@]}" 2>&1 \
  | tee "$out/run-$dtype.log"
tar czf "$out/run-$dtype.tgz" -C "$run" .
