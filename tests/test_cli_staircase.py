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
