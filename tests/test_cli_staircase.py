"""`wavecut staircase` and `wavecut quickstart` from the command line."""

import json

from tests.conftest import run_cli


def test_staircase_json_points():
    r = run_cli(
        "staircase",
        "--gpu",
        "a100",
        "--op",
        "conv2d",
        "--batch",
        "32",
        "--in-channels",
        "256",
        "--size",
        "14",
        "--kernel",
        "3",
        "--out-channels",
        "1:512",
        "--dtype",
        "fp16",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    points = json.loads(r.stdout)
    assert [p["out_channels"] for p in points] == list(range(1, 513))
    assert {"latency_us", "grid", "waves"} <= set(points[0])
    # a staircase: far fewer distinct latencies than points
    assert len({round(p["latency_us"], 6) for p in points}) < 40


def test_staircase_plot_is_written(tmp_path):
    out = tmp_path / "stairs.png"
    r = run_cli(
        "staircase",
        "--gpu",
        "t4",
        "--op",
        "linear",
        "--batch",
        "64",
        "--in-channels",
        "1024",
        "--out-channels",
        "8:1024:8",
        "--plot",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_range_and_unknown_gpu_are_one_line_errors():
    for args, text in (
        (("--out-channels", "9:3"), "--out-channels"),
        (("--gpu", "a1000"), "did you mean"),
        (("--op", "conv3d"), "allowed: conv2d"),
    ):
        r = run_cli("staircase", *args)
        assert r.returncode == 2 and text in r.stderr and "Traceback" not in r.stderr


def test_quickstart_plans_the_default_model_on_the_default_gpu():
    r = run_cli("quickstart")
    assert r.returncode == 0, r.stderr
    assert "resnet50" in r.stdout and "A100" in r.stdout and "uniform" in r.stdout and "waves" in r.stdout


def test_staircase_of_attention_heads():
    # ViT-B/16 attention at batch 8 on an A100 in fp16: FlashAttention-2, ceil(197 / 128) x 8 x heads CTAs,
    # 2 per SM (registers) on 108 SMs: 216 fit in one wave, so 13 heads (208 CTAs) is the wave edge
    r = run_cli(
        "staircase", "--gpu", "a100", "--op", "sdpa", "--batch", "8", "--in-channels", "64", "--size", "197",
        "--out-channels", "1:24", "--dtype", "fp16", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    points = json.loads(r.stdout)
    assert [p["grid"] for p in points] == [16 * h for h in range(1, 25)]
    assert [p["waves"] for p in points] == [1] * 13 + [2] * 11
    assert all("flash_fwd_kernel" in p["kernel"] for p in points)
    # fp32 on the same GPU: the memory-efficient kernel, 64 queries a CTA: ceil(197 / 64) x 8 = 32 CTAs a head
    r = run_cli("staircase", "--gpu", "a100", "--op", "sdpa", "--batch", "8", "--out-channels", "1:4", "--size", "197",
                "--in-channels", "64", "--dtype", "fp32", "--json")  # fmt: skip
    points = json.loads(r.stdout)
    assert [(p["grid"], p["kernel"]) for p in points] == [
        (32 * h, "fmha_cutlassF_f32_aligned_64x64_rf_sm80") for h in range(1, 5)
    ]
