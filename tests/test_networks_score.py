"""Whole networks: PyTorch's reduction grids, streaming at the achieved DRAM fraction, precisions as
PyTorch means them, autocast's casts, the eager timeline, and `validate networks`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from gpusim.eager import eager_step_us, precision_warnings, resolve_precision
from gpusim.errors import OpError
from gpusim.memory_ops import STREAM_DRAM_FRACTION, reduce_config
from gpusim.ops import MemoryOp
from gpusim.predict import LoweredOps, launch_overhead_us
from gpusim.spec import load_spec
from planner.lowering import with_precision
from planner.network import Network
from validation.networks import NetworkRow, model_family, read_network_timings, score_networks
from validation.readers import DataError
from wavecut.cli import app

from .conftest import MEASURED

TIMM = MEASURED / "timm" / "timm_infer_rtx3090_amp-nchw-pt240-cu124.csv"


def test_reduce_config_follows_reduce_cuh():

    # per output -> 3136 after 4-wide vectors: block 32 x 16, 392 values per lane >= 256 -> split across
    # the 16 warps (25 values each, < 256: no global split); 32 outputs / 16 per CTA... no: block.y splits
    # the input, so one output per CTA -> 32 CTAs
    assert reduce_config(32, 112 * 112, 40, 1024) == (32, 512, 1)
    # one output of 1M inputs: block 512 x 1, 1954 values per thread; a wave is 40 x 2 CTAs ->
    # max(min(80, ceil(1954 / 16)), ceil(1954 / 256)) = 80 CTAs meeting through the semaphore
    assert reduce_config(1, 1 << 20, 40, 1024) == (80, 512, 80)
    # many short rows (softmax-like 32 inputs): a warp per row, 16 rows per CTA
    assert reduce_config(4096, 32, 80, 2048) == (256, 512, 1)


def test_se_mean_on_t4_runs_at_bandwidth_not_one_block():
    spec = load_spec("t4")
    op = MemoryOp("reduce", 32 * 112 * 112, 32, 1.0)
    launch = LoweredOps([op], spec, "fp16").predict().launches[0]
    moved = (32 * 112 * 112 + 32) * 2
    busy = launch.time_us - launch_overhead_us(spec)
    assert launch.grid == 32
    # 32 CTAs on 40 SMs share the bandwidth: bytes / (320 GB/s x 0.875), about 2.9 us (was 47.3 us as one CTA)
    assert busy == pytest.approx(moved / (spec.dram_bytes_per_us() * STREAM_DRAM_FRACTION), rel=0.01)


def test_streaming_kernels_move_bytes_at_the_achieved_fraction():
    spec = load_spec("rtx3090")
    n = 1024 * 256 * 56 * 56
    add = MemoryOp("elementwise", 2 * n, n, 1.0)  # a residual add in fp16: 6 bytes per element
    t = LoweredOps([add], spec, "fp16").predict().launches[0].time_us - launch_overhead_us(spec)
    assert t == pytest.approx(6 * n / (936e3 * STREAM_DRAM_FRACTION), rel=0.01)  # 6.0 ms at 819 GB/s
    cast = MemoryOp("cast", n, n, 1.0, 4, 2)  # fp32 -> fp16: 6 bytes per element whatever the group dtype
    t32 = LoweredOps([cast], spec, "fp32").predict().op_times_us[0]
    assert t32 == pytest.approx(t + launch_overhead_us(spec), rel=1e-6)


def test_precisions_as_pytorch_means_them():
    a100, t4 = load_spec("a100"), load_spec("t4")
    assert (resolve_precision("fp32", a100).conv, resolve_precision("fp32", a100).matmul) == ("tf32", "fp32")
    assert resolve_precision("fp32", a100, allow_tf32_matmul=True).matmul == "tf32"
    assert resolve_precision("fp32", t4).conv == "fp32"  # no TF32 tensor cores: allow_tf32 changes nothing
    assert resolve_precision("fp32-strict", a100).conv == "fp32"
    amp = resolve_precision("amp-bf16", a100)
    assert (amp.conv, amp.autocast) == ("bf16", "bf16")
    with pytest.raises(OpError, match="allowed: fp32, fp32-strict, tf32, amp-fp16"):
        resolve_precision("half", a100)


def test_a_dtype_without_tensor_cores_warns_once_with_its_rate():
    assert precision_warnings(resolve_precision("amp-fp16", load_spec("a100")), load_spec("a100")) == []
    p4 = load_spec("p4")
    (line,) = precision_warnings(resolve_precision("fp16", p4), p4)
    fp32 = p4.peak_flops_per_us("fp32") / 1e6  # 5.7 TFLOP/s at boost, at the spec's sustained clock
    assert "no fp16 tensor cores" in line and "FP32 rate" in line and f"{fp32:.1f} TFLOP/s" in line
    t4 = load_spec("t4")
    (line,) = precision_warnings(resolve_precision("amp-bf16", t4), t4)
    assert "no bf16 tensor cores" in line and "computed in FP32" in line
    p100 = load_spec("p100")
    (line,) = precision_warnings(resolve_precision("fp16", p100), p100)
    assert "fp16 CUDA-core rate" in line  # GP100's paired FP16: 2x its FP32 rate


def test_eager_step_is_bound_by_the_gpu_or_the_host():
    assert eager_step_us(np.array([5.0, 5, 5]), np.array([10.0, 1, 1])) == 25.0  # GPU-bound after the first
    assert eager_step_us(np.array([1.0, 1, 1]), np.array([10.0, 10, 10])) == 31.0  # host-bound: idle gaps


class _Block(nn.Module):
    """conv -> layer norm over channels-last -> linear, then a ConvNeXt-style fp32 layer scale."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 8)
        self.scale = nn.Parameter(torch.ones(8))

    def forward(self, x):
        y = self.fc(self.norm(self.conv(x).permute(0, 2, 3, 1)))
        return self.scale * y


def test_autocast_casts_and_dtypes_follow_the_graph():
    net = Network.from_model(_Block(), (3, 4, 4))
    amp = resolve_precision("amp-fp16", load_spec("a100"))
    ops = with_precision(net.graph, net.lowered("eager"), amp, "eager")
    kinds = [(low.op.kind, low.per_sample) for low in ops]
    assert kinds == [
        ("cast", True),  # the fp32 input to fp16
        ("cast", False),  # conv.weight, once per forward whatever the batch
        ("cast", False),  # conv.bias
        ("conv2d", True),
        ("cast", True),  # fp16 conv output to fp32 for layer norm (autocast's fp32 list)
        ("layernorm", True),
        ("cast", True),  # fp32 layer norm output to fp16 for the linear
        ("cast", False),
        ("cast", False),
        ("linear", True),
        ("elementwise", True),  # fp32 parameter x fp16 -> fp32
    ]
    norm, scale = ops[5].op, ops[-1].op
    assert (norm.in_bytes, norm.out_bytes) == (4, 4)
    assert scale.out_bytes == 4 and scale.in_bytes == pytest.approx((8 * 4 + 128 * 2) / 136)
    plain = with_precision(net.graph, net.lowered("eager"), resolve_precision("fp32", load_spec("a100")), "eager")
    assert [low.dtype for low in plain if low.op.kind in ("conv2d", "linear")] == ["tf32", "fp32"]
    pred = net.predict("a100", 4, "amp-fp16", "eager")
    assert pred.step_us >= pred.total_us > 0  # batch 4 of a tiny block: host-bound


def test_model_family():
    names = ["resnet50", "wide_resnet50_2", "resnext101_32x8d", "efficientnet_b3", "efficientnet_v2_s"]
    names += ["regnet_y_400mf", "mobilenet_v3_large", "convnext_tiny", "vit_b_16", "vgg16_bn", "mnasnet0_5"]
    assert [model_family(n) for n in names] == [
        "resnet",
        "wide_resnet",
        "resnext",
        "efficientnet",
        "efficientnet_v2",
        "regnet_y",
        "mobilenet_v3",
        "convnext",
        "vit",
        "vgg",
        "mnasnet",
    ]


def _csv(tmp_path, text: str):
    path = tmp_path / "nets.csv"
    path.write_text(text)
    return path


def test_project_format_and_scoring_with_any_predictor(tmp_path):
    path = _csv(
        tmp_path,
        "model,batch,img_size,dtype,mode,device,median_us\n"
        "resnet18,8,224,fp32,eager,Tesla T4,1000\n"
        "resnet50,8,224,amp-fp16,eager,Tesla T4,4000\n",
    )
    timings = read_network_timings(path)
    assert timings.rows[1] == NetworkRow(
        row=3, model="resnet50", batch=8, img_size=224, dtype="amp-fp16", device="Tesla T4", time_us=4000
    )
    scored = score_networks(timings, lambda row: row.time_us * 1.1)
    s = scored.summary
    assert (s.rows, s.mape, s.median_ape, s.spearman) == (2, pytest.approx(10.0), pytest.approx(10.0), pytest.approx(1))
    assert list(s.by_family) == ["resnet"] and s.by_device["Tesla T4"].rows == 2


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("resnet18,8,224,fp33,eager,Tesla T4,1000", "row 2: column 'dtype': 'fp33' unknown; allowed: fp32"),
        ("resnet18,8,224,fp32,jit,Tesla T4,1000", "row 2: column 'mode': 'jit' unknown; allowed: eager, fused"),
        ("resnet18,0,224,fp32,eager,Tesla T4,1000", "row 2: column 'batch': Input should be greater than 0"),
        ("resnet18,8,224,fp32,eager,Tesla T4,", "row 2: no time: give 'median_us'"),
        ("resnet18,8,224,fp32,eager,Tesla T4,abc", "row 2: time: could not convert string to float: 'abc'"),
        (",8,224,fp32,eager,Tesla T4,10", r"row 2: column 'model \(or torchvision_name\)': missing"),
    ],
)
def test_bad_rows_name_the_file_row_and_column(tmp_path, row, message):
    path = _csv(tmp_path, "model,batch,img_size,dtype,mode,device,median_us\n" + row + "\n")
    with pytest.raises(DataError, match=message):
        read_network_timings(path)


@pytest.mark.skipif(not TIMM.exists(), reason="../shared/data/measured/timm is not here")
def test_reads_timm_files():
    rows = read_network_timings(TIMM).rows
    assert len(rows) == 113
    first = rows[0]
    assert (first.model, first.batch, first.img_size, first.dtype) == ("convnext_base", 1024, 224, "amp-fp16")
    assert first.time_us == pytest.approx(787008.0) and first.device == "NVIDIA GeForce RTX 3090"


def test_cli_scores_a_network_file(tmp_path):
    path = _csv(
        tmp_path,
        "model,batch,img_size,dtype,mode,device,median_us\n"
        "mobilenet_v3_small,4,64,amp-fp16,eager,rtx3090,2000\n"
        "mobilenet_v3_small,64,64,amp-fp16,eager,rtx3090,2500\n",
    )
    result = CliRunner().invoke(app, ["validate", "networks", "--data", str(path), "--json"])
    assert result.exit_code == 0, result.output
    summary = __import__("json").loads(result.output.strip().splitlines()[-1])
    assert summary["rows"] == 2 and set(summary["by_family"]) == {"mobilenet_v3"}
    bad = _csv(tmp_path, "model,batch,img_size,dtype,mode,device,median_us\nresnet18,1,64,fp32,eager,nogpu,10\n")
    result = CliRunner().invoke(app, ["validate", "networks", "--data", str(bad)])
    assert result.exit_code != 0 and "unknown GPU 'nogpu'" in str(result.exception)


def test_measure_networks_dry_run_writes_the_network_format(capsys, tmp_path, monkeypatch):
    import yaml

    from validation import measure

    from .test_validation import cli_in_process

    monkeypatch.setattr(measure, "WARMUP_CALLS", 1)
    monkeypatch.setattr(measure, "NETWORK_STEPS", 3)
    sweep = tmp_path / "nets.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "name": "nets",
                "description": "test",
                "dtypes": ["fp32", "amp-bf16"],
                "networks": [{"model": "mobilenet_v3_small", "batch": 1, "size": 32}],
            }
        )
    )
    out = tmp_path / "nets.csv"
    code, _, _ = cli_in_process(capsys, "validate", "measure", "--sweep", sweep, "--out", out, "--device", "cpu")
    assert code == 0
    rows = read_network_timings(out).rows
    assert [(r.model, r.batch, r.img_size, r.dtype, r.device, r.timing) for r in rows] == [
        ("mobilenet_v3_small", 1, 32, "fp32", "cpu", "host_wall_step"),
        ("mobilenet_v3_small", 1, 32, "amp-bf16", "cpu", "host_wall_step"),
    ]
    code, stdout, _ = cli_in_process(capsys, "validate", "networks", "--data", out, "--gpu", "a100", "--json")
    assert code == 0 and __import__("json").loads(stdout)["by_device"]["cpu"]["rows"] == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump({"name": "b", "description": "d", "dtypes": ["amp-fp16"], "cases": [{"op": "linear"}]})
    )
    code, _, err = cli_in_process(capsys, "validate", "measure", "--sweep", bad, "--out", out, "--device", "cpu")
    assert code == 2 and "'amp-fp16' is a network precision; op cases allow fp32, tf32, fp16, bf16" in err


def test_swin_window_attention_is_priced_and_global_pools_are_reductions():
    import torchvision

    net = Network.load("swin_t", (3, 224, 224))
    assert net.unmapped == []  # shifted_window_attention, its bias gather and patch merging's pad are mapped
    macs = net.predict("a100", 1, "fp16", "eager").macs
    assert macs / 1e9 == pytest.approx(torchvision.models.Swin_T_Weights.IMAGENET1K_V1.meta["_ops"], rel=1e-3)
    first = [low.op.name.rsplit(".", 1)[-1] for low in net.lowered("eager") if low.node == "shifted_window_attention"]
    assert first == [
        "pad",
        "partition",
        "qkv",
        "scale",
        "q_contiguous",
        "k_contiguous",
        "v_contiguous",
        "qk",
        "bias",
        "softmax",
        "av",
        "merge_heads",
        "proj",
        "reverse",
        "crop",
    ]  # the first block's windows are not shifted: no roll, no mask
    pools = [low.op.kind for low in net.lowered("eager") if low.node == "avgpool"]
    assert pools == ["reduce"]
    amp = with_precision(net.graph, net.lowered("eager"), resolve_precision("amp-fp16", load_spec("a100")), "eager")
    bias = [low for low in amp if low.node == "_get_relative_position_bias"]
    assert [low.per_sample for low in bias] == [False]  # computed from parameters alone: not per image
