"""Tracing PyTorch models into gpusim ops: MAC counts, layer counts, fusion, attention, unmapped ops."""

import warnings

import pytest
import torch
import torchvision
from torch import nn

from gpusim.errors import WavecutError
from planner.models import TRUST_MODEL_FILES, load_model
from planner.network import Network
from planner.trace import UnmappedOpWarning

# Published MACs at 3x224x224 (torchvision model cards, in GMACs).
PUBLISHED_GMACS = {"resnet18": 1.814, "resnet50": 4.089, "mobilenet_v2": 0.301}


def _gemm_names(net: Network, kind: str) -> list[str]:
    return [low.op.name for low in net.lowered("eager") if low.op.kind == kind]


def _module_names(model: nn.Module, cls: type) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, cls)]


@pytest.mark.parametrize("name", sorted(PUBLISHED_GMACS))
def test_macs_and_layer_counts_match_torchvision(name):
    model = torchvision.models.get_model(name, weights=None)
    net = Network.from_model(model, (3, 224, 224))
    macs = net.predict("a100").macs
    assert macs / 1e9 == pytest.approx(PUBLISHED_GMACS[name], rel=0.02)
    assert _gemm_names(net, "conv2d") == _module_names(model, nn.Conv2d)
    assert _gemm_names(net, "linear") == _module_names(model, nn.Linear)


def test_eager_runs_every_op_fused_folds_bn_activation_and_residual_add():
    net = Network.from_model(torchvision.models.resnet18(), (3, 64, 64))
    kinds = {mode: [low.op.kind for low in net.lowered(mode)] for mode in ("eager", "fused")}
    # 20 conv, 20 bn, 17 relu + 8 residual adds, maxpool + avgpool, fc
    assert len(kinds["eager"]) == 20 + 20 + 25 + 2 + 1
    assert kinds["eager"].count("batchnorm") == 20 and kinds["eager"].count("elementwise") == 25
    assert kinds["fused"] == [k for k in kinds["eager"] if k not in ("batchnorm", "elementwise")]
    conv2 = next(low for low in net.lowered("fused") if low.node == "layer1.0.conv2")
    assert conv2.fused == ("layer1.0.bn2", "add", "layer1.0.relu_1")
    fused_ops = net.ops(mode="fused")
    assert sum(op.flops for op in fused_ops if op.kind == "conv2d") == sum(
        op.flops for op in net.ops(mode="eager") if op.kind == "conv2d"
    )


def test_squeeze_excitation_scale_is_its_own_kernel_when_fused():
    model = torchvision.models.mobilenet_v3_large()
    muls = [low for low in Network.from_model(model, (3, 64, 64)).lowered("fused") if low.op.kind == "elementwise"]
    assert len(muls) == len(_module_names(model, torchvision.ops.SqueezeExcitation)) == 8
    assert all(low.node.startswith("mul") for low in muls)


def test_graph_nodes_carry_module_path_ops_and_shapes():
    net = Network.from_model(torchvision.models.resnet18(), (3, 64, 64))
    node = net.graph.nodes["layer2.0.conv1"]
    conv = node["ops"][0].op
    assert node["shape"] == (1, 128, 8, 8) and node["op_type"] == "Conv2d" and node["role"] == "gemm"
    assert (conv.in_channels, conv.out_channels, conv.height, conv.stride) == (64, 128, 16, (2, 2))
    assert "layer2.0.bn1" in net.graph.successors("layer2.0.conv1")


def test_grouped_dilated_strided_and_depthwise_convs():
    model = nn.Sequential(
        nn.Conv2d(16, 32, 3, stride=2, padding=2, dilation=2, groups=4),
        nn.Conv2d(32, 32, 5, padding="same", groups=32),
        nn.Flatten(),
        nn.Linear(32 * 16 * 16, 10),
    )
    ops = Network.from_model(model, (16, 32, 32)).ops(batch=3, mode="eager")
    grouped, depthwise, linear = ops
    assert (grouped.groups, grouped.dilation, grouped.stride, grouped.out_hw, grouped.batch) == (
        4,
        (2, 2),
        (2, 2),
        (16, 16),
        3,
    )
    assert depthwise.is_depthwise and depthwise.padding == (2, 2) and depthwise.out_hw == (16, 16)
    assert (linear.batch, linear.in_features, linear.out_features) == (3, 8192, 10)


def test_vision_transformer_attention_is_linear_sdpa_linear():
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=10
    )
    net = Network.from_model(model, (3, 32, 32))
    ops = {op.name: op for op in net.ops(batch=2, mode="eager")}
    path = "encoder.layers.encoder_layer_0.self_attention"
    tokens = 16 + 1
    assert (ops[f"{path}.in_proj"].batch, ops[f"{path}.in_proj"].out_features) == (2 * tokens, 3 * 64)
    sdpa = ops[f"{path}.sdpa"]
    assert (sdpa.kind, sdpa.batch, sdpa.heads, sdpa.q_len, sdpa.kv_len, sdpa.head_dim) == (
        "sdpa",
        2,
        4,
        tokens,
        tokens,
        16,
    )
    assert f"{path}.qk" not in ops and f"{path}.softmax" not in ops
    assert set(_module_names(model, nn.Linear)) <= set(_gemm_names(net, "linear"))
    per_layer = tokens * 64 * (3 * 64 + 64 + 2 * 128) + 2 * 4 * tokens * tokens * 16  # sdpa: 2 MACs per score
    expected = 16 * 64 * 3 * 8 * 8 + 2 * per_layer + 64 * 10
    assert net.predict("a100").macs == expected
    fused_elementwise = [low.node for low in net.lowered("fused") if low.op.kind == "elementwise"]
    assert fused_elementwise == ["cat", "add"]  # class token and position embedding; residual adds are fused


def test_scaled_dot_product_attention():
    class Sdpa(nn.Module):
        def forward(self, x):
            q = x.view(1, 2, 10, 8)
            return nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)

    (op,) = Network.from_model(Sdpa(), (2, 10, 8)).ops(batch=3, mode="eager")
    assert (op.kind, op.batch, op.heads, op.q_len, op.kv_len, op.head_dim, op.causal) == ("sdpa", 3, 2, 10, 10, 8, True)
    assert op.flops == 4 * 3 * 2 * 10 * 10 * 8 // 2  # causal: half of Q K^T and P V


class CumsumNet(nn.Module):
    """A model with an op gpusim cannot map (cumsum)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return torch.cumsum(self.conv(x), dim=1)


def test_unmapped_op_warns_and_is_priced_or_strict_fails():
    with pytest.warns(UnmappedOpWarning, match=r"cumsum \(cumsum\)"):
        net = Network.from_model(CumsumNet(), (3, 16, 16))
    assert net.unmapped == ["cumsum"]
    other = net.ops(mode="fused")[-1]
    assert other.kind == "other" and other.elements_out == 8 * 14 * 14
    assert net.predict("a100").unmapped == ["cumsum"]
    with pytest.raises(WavecutError, match="cumsum"):
        Network.from_model(CumsumNet(), (3, 16, 16), strict=True)


def test_data_dependent_shapes_fall_back_to_a_real_forward():
    class Nonzero(nn.Module):
        def forward(self, x):
            return torch.nonzero(torch.relu(x))

    with pytest.warns(UnmappedOpWarning, match="nonzero"):
        graph = Network.from_model(Nonzero(), torch.ones(2, 3, 4)).graph
    assert graph.nodes["nonzero"]["shape"] == (12, 3)


def test_batch_gpu_and_dtype_without_retracing():
    net = Network.from_model(torchvision.models.resnet18(), (3, 64, 64))
    one, eight = net.predict("a100", 1), net.predict("a100", 8)
    assert eight.flops == 8 * one.flops and eight.layers[0].shape == (8, 64, 32, 32)
    assert eight.total_us > one.total_us
    t4 = net.predict("t4", 8, "fp32", "eager")
    assert t4.gpu != eight.gpu and len(net.ops(8, "eager")) == 68  # 20 conv, 20 bn, 17 relu, 8 add, 2 pool, fc
    assert len({layer.name for layer in t4.layers}) == 68  # a Winograd conv launches several kernels
    for p in (one, eight, t4):
        assert p.total_us == pytest.approx(sum(layer.latency_us for layer in p.layers))
        assert p.tail_waste_us == pytest.approx(sum(layer.tail_waste_us for layer in p.layers))
        assert all(layer.tail_waste_us == 0 for layer in p.layers if layer.tail_fill == 1)
        assert 0 < p.tail_waste_us < p.total_us


def test_model_loading(tmp_path):
    with pytest.raises(WavecutError, match="allowed: a torchvision name .*resnet50"):
        load_model("resnet5O")
    with pytest.raises(WavecutError, match="cannot import"):
        load_model("tests.test_network:no_such_factory")
    path = tmp_path / "net.pt"
    torch.save(CumsumNet(), path)
    with pytest.raises(WavecutError, match="--trust-model-file"):  # a whole pickled model can run code
        load_model(str(path))
    token = TRUST_MODEL_FILES.set(True)
    try:
        assert isinstance(load_model(str(path)), CumsumNet)
    finally:
        TRUST_MODEL_FILES.reset(token)
    assert not load_model("tests.test_network:CumsumNet").training
    torch.save({"not": "a module"}, path)
    with pytest.raises(WavecutError, match="expected a torch.nn.Module"):
        load_model(str(path))


def test_invalid_mode_and_batch():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = Network.from_model(CumsumNet(), (3, 16, 16))
    with pytest.raises(WavecutError, match="allowed: eager, fused"):
        net.ops(mode="jit")
    with pytest.raises(WavecutError, match="--batch"):
        net.ops(batch=0)
