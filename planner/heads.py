"""Attention heads as planner groups: one group per nn.MultiheadAttention, its width the number of heads.

Torch-Pruning prunes nn.MultiheadAttention only through its embedding width (MultiheadAttentionPruner
removes the same indices from q, k, v, the out projection and the residual stream, with num_heads fixed),
so dropping whole heads of one block while keeping the residual width is done here: the kept heads'
rows of the packed in_proj (q, k and v) and columns of out_proj are selected and the module is replaced
by `HeadAttention`, the same computation with `heads x head_dim` inner channels and the block's outer
embedding width (nn.MultiheadAttention requires embed_dim == num_heads * head_dim, so it cannot hold
fewer heads at the same outer width). docs/planner.md, "Attention heads".
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class HeadAttention(nn.Module):
    """Self- or cross-attention with `num_heads` heads of `head_dim` channels between `embed_dim`-wide inputs
    and outputs: nn.MultiheadAttention's forward (packed in_proj, no bias_k / bias_v / add_zero_attn)
    where num_heads * head_dim may be less than embed_dim (a head-pruned nn.MultiheadAttention). Its
    parameters have nn.MultiheadAttention's names (in_proj_weight, in_proj_bias, out_proj)."""

    # nn.TransformerEncoderLayer's fused fast path assumes embed_dim == num_heads * head_dim; this flag
    # (which it checks) keeps it on the ordinary forward, as for an nn.MultiheadAttention with kdim != embed_dim.
    _qkv_same_embed_dim = False

    def __init__(
        self, embed_dim: int, num_heads: int, head_dim: int, bias: bool = True, batch_first: bool = False
    ) -> None:
        super().__init__()
        self.embed_dim, self.num_heads, self.head_dim, self.batch_first = embed_dim, num_heads, head_dim, batch_first
        inner = num_heads * head_dim
        self.in_proj_weight = nn.Parameter(torch.empty(3 * inner, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * inner)) if bias else None
        self.out_proj = nn.Linear(inner, embed_dim, bias=bias)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """nn.MultiheadAttention.forward's result: the output and (with need_weights) the attention weights."""
        if not self.batch_first:  # [L, N, E] -> [N, L, E]
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)
        q, k, v = (
            F.linear(x, w, b).unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)
            for x, w, b in ((query, w_q, b_q), (key, w_k, b_k), (value, w_v, b_v))
        )
        mask = _additive_mask(attn_mask, key_padding_mask, q.dtype, is_causal, q.shape[-2], k.shape[-2])
        if need_weights:  # the math path, which has the weights
            weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.head_dim) + mask, dim=-1)
            heads = weights @ v
        else:
            weights = None
            heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = self.out_proj(heads.transpose(1, 2).flatten(-2))
        if not self.batch_first:
            out = out.transpose(0, 1)
        if weights is not None and average_attn_weights:
            weights = weights.mean(dim=1)
        return out, weights


def _additive_mask(
    attn_mask: torch.Tensor | None,
    key_padding_mask: torch.Tensor | None,
    dtype: torch.dtype,
    is_causal: bool,
    lq: int,
    lk: int,
) -> torch.Tensor:
    """nn.MultiheadAttention's masks as one additive float mask, broadcast to [N, heads, Lq, Lk]
    (boolean masks: True = not allowed)."""
    mask = torch.zeros(lq, lk, dtype=dtype)
    if is_causal and attn_mask is None:
        attn_mask = torch.ones(lq, lk, dtype=torch.bool).triu(1)
    for m, shape in ((attn_mask, None), (key_padding_mask, (-1, 1, 1, lk))):
        if m is None:
            continue
        m = torch.zeros_like(m, dtype=dtype).masked_fill(m, float("-inf")) if m.dtype == torch.bool else m.to(dtype)
        mask = mask + (m.reshape(shape) if shape else m)
    return mask


ATTENTION_MODULES = (nn.MultiheadAttention, HeadAttention)  # traced whole, as one attention node


def head_layout(module: nn.Module) -> tuple[int, int, int] | None:
    """(embed_dim, heads, head_dim) of an attention module whose heads can be planned: nn.MultiheadAttention
    with a packed in_proj (kdim == vdim == embed_dim), no bias_k / bias_v or add_zero_attn, or a
    HeadAttention; None for any other module."""
    if isinstance(module, HeadAttention):
        return module.embed_dim, module.num_heads, module.head_dim
    if (
        isinstance(module, nn.MultiheadAttention)
        and module._qkv_same_embed_dim
        and module.bias_k is None
        and not module.add_zero_attn
    ):
        return module.embed_dim, module.num_heads, module.head_dim
    return None


def _rows(heads: list[int], head_dim: int, count: int) -> torch.Tensor:
    """The in_proj rows of `heads` in each of q, k and v (count heads per block)."""
    per = torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in heads])
    return torch.cat([per + block * count * head_dim for block in range(3)])


@torch.no_grad()
def keep_heads(module: nn.Module, kept: list[int]) -> HeadAttention:
    """A HeadAttention computing what `module` computes with only the heads in `kept` (the others removed)."""
    layout = head_layout(module)
    if layout is None:
        raise ValueError(f"{type(module).__name__}: not an attention module whose heads can be pruned")
    embed, heads, head_dim = layout
    weight, bias, out_proj = module.in_proj_weight, module.in_proj_bias, module.out_proj
    pruned = HeadAttention(embed, len(kept), head_dim, bias is not None, module.batch_first)
    rows = _rows(kept, head_dim, heads)
    pruned.in_proj_weight.copy_(weight[rows])
    if bias is not None:
        pruned.in_proj_bias.copy_(bias[rows])
    columns = torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in kept])
    pruned.out_proj.weight.copy_(out_proj.weight[:, columns])
    if out_proj.bias is not None:
        pruned.out_proj.bias.copy_(out_proj.bias)
    return pruned.to(weight.device, weight.dtype).train(module.training)


def prune_heads(model: nn.Module, name: str, kept: list[int]) -> None:
    """Replace the attention module `name` of `model` by one keeping only the heads in `kept`."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    setattr(parent, child, keep_heads(getattr(parent, child), kept))


@torch.no_grad()
def head_magnitude(module: nn.Module) -> np.ndarray:
    """Per head: the L1 norm of its q, k and v rows of in_proj and its columns of out_proj."""
    embed, heads, head_dim = head_layout(module)
    qkv = module.in_proj_weight.abs().reshape(3, heads, head_dim, embed).sum(dim=(0, 2, 3))
    out = module.out_proj.weight.abs().reshape(embed, heads, head_dim).sum(dim=(0, 2))
    return (qkv + out).double().cpu().numpy()


def head_taylor(module: nn.Module, terms: dict[torch.Tensor, list[torch.Tensor]]) -> np.ndarray:
    """Per head: |first-order loss change| of removing it, summed over calibration batches.

    A head's output is its attention weights times its v rows, so zeroing the head's v rows and v bias
    of in_proj zeroes exactly its contribution: the change is sum(theta * dL/dtheta) over them per batch
    (`terms`: TaylorImportance.parameter_terms, per parameter the per-batch, per-output-row sums)."""
    _, heads, head_dim = head_layout(module)
    signed = None
    for param in (module.in_proj_weight, module.in_proj_bias):
        if param is None or param not in terms:
            continue
        per_batch = torch.stack(terms[param])  # [batches, 3 * heads * head_dim]
        v = per_batch.reshape(len(per_batch), 3, heads, head_dim)[:, 2].sum(dim=2)
        signed = v if signed is None else signed + v
    return np.zeros(heads) if signed is None else signed.abs().sum(dim=0).double().numpy()
