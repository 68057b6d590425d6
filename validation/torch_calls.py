"""How each op kind is run with torch for timing: a builder per gpusim op kind name (the validation half of
the op registry, gpusim.ops.OP_KINDS; gpusim never imports torch, so the torch call lives here).

A builder takes the op and the torch tensor keywords (device, dtype) and returns a no-argument callable
that runs the op once. The kinds with a builder are the ones the harness can time, sweep files can
list and the project's CSV can hold (validation.project_format). torch is imported inside each builder,
so importing this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gpusim.attention import ScaledDotProductAttention
from gpusim.ops import Conv2d, Linear, Matmul, Op

Builder = Callable[[Any, dict[str, Any]], Callable[[], object]]
TORCH_CALLS: dict[str, Builder] = {}


def torch_call(kind: str) -> Callable[[Builder], Builder]:
    """Decorator: register the torch builder of op kind `kind` (a gpusim.ops.OP_KINDS name)."""

    def enter(builder: Builder) -> Builder:
        TORCH_CALLS[kind] = builder
        return builder

    return enter


@torch_call("conv2d")
def _conv(op: Conv2d, kw: dict[str, Any]) -> Callable[[], object]:
    """nn.Conv2d without bias."""
    import torch

    conv = torch.nn.Conv2d(
        op.in_channels, op.out_channels, op.kernel_size, op.stride, op.padding, op.dilation, op.groups, bias=False, **kw
    )
    x = torch.randn(op.batch, op.in_channels, op.height, op.width, **kw)
    return lambda: conv(x)


@torch_call("linear")
def _linear(op: Linear, kw: dict[str, Any]) -> Callable[[], object]:
    """nn.Linear with bias."""
    import torch

    linear = torch.nn.Linear(op.in_features, op.out_features, **kw)
    x = torch.randn(op.batch, op.in_features, **kw)
    return lambda: linear(x)


@torch_call("bmm")
def _bmm(op: Matmul, kw: dict[str, Any]) -> Callable[[], object]:
    """torch.bmm."""
    import torch

    a, b = torch.randn(op.batch, op.m, op.k, **kw), torch.randn(op.batch, op.k, op.n, **kw)
    return lambda: torch.bmm(a, b)


@torch_call("sdpa")
def _sdpa(op: ScaledDotProductAttention, kw: dict[str, Any]) -> Callable[[], object]:
    """F.scaled_dot_product_attention on [batch, heads, length, head_dim] tensors (PyTorch picks the backend)."""
    import torch

    q = torch.randn(op.batch, op.heads, op.q_len, op.head_dim, **kw)
    k, v = (torch.randn(op.batch, op.heads, op.kv_len, op.head_dim, **kw) for _ in range(2))
    return lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=bool(op.causal))


def builder_for(op: Op) -> Builder | None:
    """The torch builder of op's kind, or None when the kind cannot be timed."""
    return TORCH_CALLS.get(op.kind)
