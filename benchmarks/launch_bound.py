"""Shapes the simulator prices far above an ideal launch: a check that no GEMM runs as a launch no library makes.

Prices 3,810 power-of-two nn.Linear shapes (rows, in and out features from 1 to 2^19, at least 16 of each
feature, rows x in x out <= 2^38), or with `--op bmm` 1,622 torch.bmm shapes (batch 1, 16, 256 or 4096; m, n
and k powers of 4 from 1 to 2^14; batch x m x n x k <= 2^36 and at most 2^31 elements moved), per GPU and dtype
(those with a datasheet peak), and compares each GPU time with an ideal launch: the
larger of FLOPs at the datasheet peak and compulsory bytes at the DRAM peak, plus one launch
(the model's per-kernel launch overhead). It counts the shapes over 4x and 8x and lists the worst (docs/accuracy.md, method item 8:
the one-CTA deep-K GEMMs and the 4-CTA GEMVs this found). No data is read; the ratio is not an error, only
a pointer to launches worth a look.

    python3 -m benchmarks.launch_bound [--op linear|bmm] [--gpus a100,t4,...] [--dtypes fp32,fp16] [--worst 3] [--json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from gpusim import Linear, Matmul
from gpusim.dtypes import DTYPE_BYTES
from gpusim.predict import LoweredOps, launch_overhead_us
from gpusim.spec import load_spec

GPUS = ("a100-pcie-40gb", "h100-sxm", "t4", "v100-pcie", "gtx1080ti", "l4")
SIZES = [2**i for i in range(20)]
BMM_SIZES = [4**i for i in range(8)]
# per op: the shapes priced, as the op's constructor arguments
SHAPES = {
    "linear": [(r, i, o) for r in SIZES for i in SIZES for o in SIZES if i >= 16 and o >= 16 and r * i * o <= 2**38],
    "bmm": [
        (b, m, n, k)
        for b in (1, 16, 256, 4096)
        for m in BMM_SIZES
        for n in BMM_SIZES
        for k in BMM_SIZES
        if b * m * n * k <= 2**36 and b * (m * k + k * n + m * n) <= 2**31
    ],
}
OP_CLASSES = {"linear": Linear, "bmm": Matmul}


def bound(gpu: str, dtype: str, worst: int, op: str = "linear") -> dict:
    """Per GPU and dtype: shapes of `op` over 4x and 8x the ideal launch, and the `worst` of them."""
    spec = load_spec(gpu)
    ops = [OP_CLASSES[op](*s) for s in SHAPES[op]]
    pred = LoweredOps(ops, spec, dtype).predict()
    flop_rate = getattr(spec.device.peak_tflops, dtype) * 1e6  # FLOP per us at the datasheet peak
    byte_rate = spec.dram_bytes_per_us()
    ideal = np.array([max(o.flops / flop_rate, DTYPE_BYTES[dtype] * o.operand_elements / byte_rate) for o in ops])
    ratio = pred.gpu_us / (ideal + launch_overhead_us(spec))
    launches: dict[int, list[str]] = {}
    for k in pred.launches:
        launches.setdefault(k.op_index, []).append(f"{k.kernel} x{k.grid} split {k.split_k}")
    order = np.argsort(-ratio)[:worst]
    return {
        "gpu": gpu,
        "dtype": dtype,
        "shapes": len(ops),
        "over_4x": int((ratio > 4).sum()),
        "over_8x": int((ratio > 8).sum()),
        "worst": [
            {
                "shape": SHAPES[op][j],
                "ratio": float(ratio[j]),
                "gpu_us": float(pred.gpu_us[j]),
                "launches": launches[int(j)],
            }
            for j in order
        ],
    }


def main() -> None:
    """Print the table (and one JSON object last with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--op", choices=tuple(SHAPES), default="linear", help="the op whose shapes are priced")
    parser.add_argument("--gpus", default=",".join(GPUS), help="comma-separated GPU names")
    parser.add_argument("--dtypes", default="fp32,fp16", help="comma-separated dtypes")
    parser.add_argument("--worst", type=int, default=3, help="worst shapes listed per GPU and dtype")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    pairs = [(g, d) for g in args.gpus.split(",") if g for d in args.dtypes.split(",") if d]
    rows = [bound(g, d, args.worst, args.op) for g, d in pairs if load_spec(g).has_native(d)]
    fields = "(rows, in, out)" if args.op == "linear" else "(batch, m, n, k)"
    print(f"{'gpu':16s} {'dtype':5s} {'shapes':>6s} {'>4x':>5s} {'>8x':>5s}  worst {fields}: ratio, GPU us")
    for r in rows:
        worst = "; ".join(
            f"{w['shape']}: {w['ratio']:.1f}x, {w['gpu_us']:.1f} us ({', '.join(w['launches'])})" for w in r["worst"]
        )
        print(f"{r['gpu']:16s} {r['dtype']:5s} {r['shapes']:6d} {r['over_4x']:5d} {r['over_8x']:5d}  {worst}")
    if args.json:
        print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
