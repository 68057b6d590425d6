"""Attention heads as planner groups (planner.heads): the pruned module computes what the unpruned one does
without the removed heads, the width model prices a head count exactly as the pruned model traces, and a
plan that drops heads applies and predicts its planned latency."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from gpusim.attention import ScaledDotProductAttention
from gpusim.ops import Linear
from planner.apply import prune, verify_plan
from planner.candidates import WidthModel, group_widths
from planner.groups import find_groups
from planner.heads import HeadAttention, head_magnitude, head_taylor, keep_heads
from planner.network import Network
from planner.plan import build_plan, load_weights_model, prepare, problem_for
from planner.plan_model import GroupWidth

BLOCK0 = "encoder.layers.encoder_layer_0.self_attention"


def tiny_vit() -> nn.Module:
    """A 2-block ViT: 32x32 images, 16x16 patches (5 tokens with the class token), 4 heads of 16 channels."""
    torch.manual_seed(0)
    return VisionTransformer(32, 16, 2, 4, 64, 128, num_classes=10).eval()


def _mha(batch_first: bool = True) -> nn.MultiheadAttention:
    torch.manual_seed(0)
    return nn.MultiheadAttention(64, 4, batch_first=batch_first).eval()


@pytest.mark.parametrize("batch_first", [True, False])
def test_all_heads_kept_is_the_same_attention(batch_first: bool) -> None:
    mha = _mha(batch_first)
    x, y = torch.randn(2, 5, 64), torch.randn(2, 7, 64)
    if not batch_first:
        x, y = x.transpose(0, 1), y.transpose(0, 1)
    kept = keep_heads(mha, [0, 1, 2, 3])
    for q, kv in ((x, x), (x, y)):  # self- and cross-attention
        out, weights = mha(q, kv, kv, need_weights=True)
        mine, my_weights = kept(q, kv, kv, need_weights=True)
        torch.testing.assert_close(mine, out, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(my_weights, weights, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(kept(q, kv, kv, need_weights=False)[0], out, rtol=1e-5, atol=1e-6)


def test_removing_a_head_is_zeroing_its_values() -> None:
    mha = _mha()
    x = torch.randn(2, 5, 64)
    pruned = keep_heads(mha, [0, 2, 3])
    assert (pruned.num_heads, pruned.head_dim, pruned.embed_dim) == (3, 16, 64)
    assert pruned.in_proj_weight.shape == (3 * 3 * 16, 64) and pruned.out_proj.weight.shape == (64, 48)
    with torch.no_grad():  # head 1's v rows: 2 * 64 + 16 .. 2 * 64 + 32 of the packed in_proj
        mha.in_proj_weight[144:160] = 0
        mha.in_proj_bias[144:160] = 0
    torch.testing.assert_close(pruned(x, x, x, need_weights=False)[0], mha(x, x, x)[0], rtol=1e-5, atol=1e-6)


def test_head_importance_by_hand() -> None:
    mha = nn.MultiheadAttention(4, 2)  # 2 heads of 2 channels
    with torch.no_grad():
        mha.in_proj_weight.fill_(1.0)
        mha.out_proj.weight.fill_(1.0)
        mha.in_proj_weight[[2, 3, 6, 7, 10, 11]] = 2.0  # head 1's q, k and v rows
    # head 0: 3 x 2 rows x 4 columns of 1, plus 4 x 2 out_proj columns of 1: 24 + 8 = 32; head 1: 48 + 8 = 56
    assert head_magnitude(mha).tolist() == [32.0, 56.0]
    # Taylor: per batch, the signed sum over the head's v rows (8, 9 | 10, 11) of weight and bias terms
    terms = {
        mha.in_proj_weight: [torch.arange(12.0), -torch.ones(12)],
        mha.in_proj_bias: [torch.ones(12), torch.ones(12)],
    }
    # head 0: |8 + 9 + 2| + |-2 + 2| = 19; head 1: |10 + 11 + 2| + 0 = 23
    assert head_taylor(mha, terms).tolist() == [19.0, 23.0]


def test_tiny_vit_head_groups_and_widths() -> None:
    groups = {g.name: g for g in find_groups(tiny_vit(), torch.zeros(1, 3, 32, 32))}
    heads = [g for g in groups.values() if g.head_dim]
    assert [(g.name, g.full_width, g.head_dim) for g in heads] == [
        (f"encoder.layers.encoder_layer_{b}.self_attention", 4, 16) for b in (0, 1)
    ]
    assert group_widths(heads[0], 8) == [1, 2, 3, 4]  # head counts: no channel alignment, no 10% floor
    assert not groups["conv_proj"].prunable  # the embedding (residual) width stays locked


@pytest.fixture(scope="module")
def vit() -> tuple[nn.Module, list, Network]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = load_weights_model("vit_b_16", None)
        groups = find_groups(model, torch.zeros(1, 3, 224, 224))
        return model, groups, Network.from_model(model, (3, 224, 224), "vit_b_16")


@pytest.mark.slow
def test_vit_two_heads_removed_by_hand(vit) -> None:
    model, groups, network = vit
    wm = WidthModel(network, groups, "a100", 8, "fp16", "fused")
    g = next(i for i, group in enumerate(groups) if group.name == BLOCK0)
    widths = wm.full.copy()
    widths[g] = 10
    ops = {op.name: op for op in wm.ops(widths)}
    # 197 tokens x batch 8 = 1576 rows; q, k, v: 3 x 10 heads x 64 = 1920 out features; out_proj reads 640
    assert ops[f"{BLOCK0}.in_proj"] == Linear(1576, 768, 1920, name=f"{BLOCK0}.in_proj")
    assert ops[f"{BLOCK0}.out_proj"] == Linear(1576, 640, 768, name=f"{BLOCK0}.out_proj")
    assert ops[f"{BLOCK0}.sdpa"] == ScaledDotProductAttention(8, 10, 197, 197, 64, name=f"{BLOCK0}.sdpa")
    other = "encoder.layers.encoder_layer_1.self_attention"
    assert ops[f"{other}.sdpa"].heads == 12 and ops[f"{other}.in_proj"].out_features == 2304
    # FlashAttention-2 at head_dim 64: ceil(197 / 128) query tiles x batch 8 x 10 heads = 160 CTAs
    sdpa = next(i for i, op in enumerate(wm.ops(widths)) if op.name == f"{BLOCK0}.sdpa")
    assert wm.names[sdpa] == BLOCK0 and wm.predict(widths).main_launches()[sdpa].grid == 160

    # the pruned model traces to the same ops, so it predicts what the width model prices
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruned = copy.deepcopy(model)
        kept = [0, 1, 2, 3, 4, 5, 7, 8, 9, 11]  # heads 6 and 10 removed
        planned = GroupWidth(
            name=BLOCK0, full_width=12, width=10, kept=kept, producers=[BLOCK0], consumers=[], importance_kept=1.0
        )
        prune(pruned, [planned], torch.zeros(1, 3, 224, 224))
        assert isinstance(pruned.get_submodule(BLOCK0), HeadAttention)
        assert pruned(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)
        after = Network.from_model(pruned, (3, 224, 224)).predict("a100", 8, "fp16", "fused").total_us
    assert after == pytest.approx(wm.latency(widths), rel=1e-9)
    assert after < wm.latency(wm.full)


@pytest.mark.slow
def test_vit_plan_with_heads_verifies() -> None:
    """A plan dropping heads in two blocks (and nothing else) passes the plan's own apply-and-predict check."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prep = prepare("vit_b_16", (3, 224, 224), "magnitude")
        problem = problem_for(prep, "a100", 8, "fp16", "fused")
        widths = problem.full.copy()
        at = {g.name: i for i, g in enumerate(prep.groups)}
        widths[at[BLOCK0]] = 10
        widths[at["encoder.layers.encoder_layer_5.self_attention"]] = 3
        plan = build_plan(prep, problem, widths, 0.0)
        assert {g.name: g.width for g in plan.groups if g.width < g.full_width} == {
            BLOCK0: 10,
            "encoder.layers.encoder_layer_5.self_attention": 3,
        }
        assert verify_plan(plan) == pytest.approx(plan.planned_latency_us, rel=1e-9)
    assert plan.planned_latency_us < problem.model.latency(problem.full)


def test_transformer_encoder_layer_takes_the_pruned_attention() -> None:
    """nn.TransformerEncoderLayer's eval fast path (fused, embed_dim = heads x head_dim) is not taken for
    HeadAttention; the ordinary path computes the layer with the head removed."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True).eval()
    x = torch.randn(2, 5, 64)
    pruned = copy.deepcopy(layer)
    pruned.self_attn = keep_heads(layer.self_attn, [0, 1, 3])
    with torch.no_grad():  # head 2's v rows: 2 * 64 + 32 .. 2 * 64 + 48
        layer.self_attn.in_proj_weight[160:176] = 0
        layer.self_attn.in_proj_bias[160:176] = 0
        torch.testing.assert_close(pruned(x), layer(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("dtype", "mode"), [("fp16", "fused"), ("bf16", "eager"), ("fp32", "eager"), ("tf32", "fused")]
)
def test_tiny_vit_pruned_model_predicts_the_priced_latency(dtype: str, mode: str) -> None:
    """Flash (fp16/bf16 on A100) and the memory-efficient kernel (fp32/tf32): the width model at 2 and 3 heads equals the
    pruned model's own trace."""
    model = tiny_vit()
    example = torch.zeros(1, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        groups = find_groups(model, example)
        wm = WidthModel(Network.from_model(model, (3, 32, 32)), groups, "a100", 8, dtype, mode)
        widths = wm.full.copy()
        at = {g.name: i for i, g in enumerate(groups)}
        plan = {BLOCK0: [1, 3], "encoder.layers.encoder_layer_1.self_attention": [0, 1, 2]}
        planned = []
        for name, kept in plan.items():
            widths[at[name]] = len(kept)
            planned.append(
                GroupWidth(
                    name=name,
                    full_width=4,
                    width=len(kept),
                    kept=kept,
                    producers=[name],
                    consumers=[],
                    importance_kept=1.0,
                )
            )
        prune(model, planned, example)
        after = Network.from_model(model, (3, 32, 32)).predict("a100", 8, dtype, mode).total_us
    assert model(example).shape == (1, 10)
    assert after == pytest.approx(wm.latency(widths), rel=1e-9)
