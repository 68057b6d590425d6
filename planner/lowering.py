"""From traced torch.fx nodes to gpusim ops, and from the op graph to the op list of one mode.

Every node gets a *role* and its per-sample ops (batch 1; `with_batch` scales them):

- gemm: conv (dense, grouped, depthwise, dilated, strided), linear, matmul/bmm, attention
  (nn.MultiheadAttention: its in/out projections as linear ops around one scaled_dot_product_attention
  op, which PyTorch calls for it since 2.0 with need_weights=False; a bare
  scaled_dot_product_attention call: that op; gpusim.attention prices it as the backend PyTorch picks:
  flash, memory-efficient or math path);
- norm: batch norm (one scale and shift per element);
- epilogue: activations, add/sub/mul/div (residual adds, constant or per-channel scales);
- memory: pooling, reductions (global average pooling and mean: kind "reduce", priced with the grid
  of PyTorch's reduction kernel), softmax, layer norm, cat, tensor-by-tensor broadcasts
  (squeeze-excitation's scale), and ops that cannot be mapped (kind "other", listed as unmapped);
- free: views and bookkeeping (reshape, view, flatten, permute, transpose, contiguous, getitem, expand,
  dropout and stochastic depth in eval mode, identity, shape reads, asserts).

Modes: `eager` runs every op as its own kernel. `fused` does what inference engines (TensorRT,
cuDNN fused conv) do: a batch norm directly after a conv or linear is folded into its weights, and
an epilogue op (activation, residual add, scale) whose input comes from a gemm node's output chain
runs inside that gemm's epilogue, provided the fused input has no other consumer and is not
broadcast. Fused ops cost nothing; the gemm's layer lists them under `fused`. Free nodes pass a
gemm's output chain through. Attention is lowered the same way in both modes.

Precisions (gpusim.eager.Precision): `with_precision` gives every op the gpusim dtype PyTorch runs
it in. Under autocast (eager mode) it follows the tensors' dtypes through the graph: conv, linear
and matmul run in the low dtype and cast every fp32 input (weights once per forward: casts that do
not grow with the batch), layer norm and softmax (autocast's fp32 list) cast a low-precision input
to fp32 and write fp32, and every other op reads its inputs as they are and writes the dtype they
promote to (an fp32 parameter such as ConvNeXt's layer scale or ViT's class token makes it fp32).
The model's input and parameters are fp32 (autocast over an fp32 model).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import networkx as nx
from torch import fx, nn

from gpusim.attention import ScaledDotProductAttention
from gpusim.dtypes import DTYPE_BYTES
from gpusim.eager import Precision
from gpusim.ops import Conv2d, Linear, Matmul, MemoryOp, Op, elementwise, layernorm, softmax
from planner.heads import ATTENTION_MODULES

GEMM, NORM, EPILOGUE, MEMORY, FREE = "gemm", "norm", "epilogue", "memory", "free"

Shape = tuple[int, ...]

ACTIVATION_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.SiLU,
    nn.GELU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.Tanh,
    nn.LeakyReLU,
    nn.ELU,
    nn.Mish,
    nn.Softplus,
    nn.Hardtanh,
    nn.PReLU,
)
FREE_MODULES = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Flatten, nn.Unflatten)
ACTIVATIONS = {
    "relu",
    "relu_",
    "relu6",
    "silu",
    "gelu",
    "hardswish",
    "hardsigmoid",
    "sigmoid",
    "tanh",
    "leaky_relu",
    "elu",
    "mish",
    "softplus",
    "hardtanh",
    "sigmoid_",
    "tanh_",
}
BINARY = {"add", "iadd", "sub", "isub", "mul", "imul", "truediv", "itruediv", "div"}
FREE_CALLS = {
    "getitem",
    "getattr",
    "flatten",
    "view",
    "reshape",
    "permute",
    "transpose",
    "contiguous",
    "expand",
    "expand_as",
    "squeeze",
    "unsqueeze",
    "size",
    "dim",
    "_assert",
    "stochastic_depth",
    "dropout",
    "chunk",
    "split",
    "unbind",
    "t",
    "narrow",
    "unflatten",
}
POOL_CALLS = {"adaptive_avg_pool2d", "adaptive_max_pool2d", "avg_pool2d", "max_pool2d"}
REDUCE_CALLS = {"mean", "amax", "sum"}
# Op kinds autocast runs in fp32 (torch.amp autocast op reference: "CUDA ops that can autocast to float32")
AUTOCAST_FP32_KINDS = ("layernorm", "softmax")
SOFTMAX_CALLS = {"softmax", "log_softmax"}
MATMUL_CALLS = {"matmul", "bmm", "mm"}
CAT_CALLS = {"cat", "concat", "stack"}
# torchvision's Swin helpers that copy a tensor: the relative-position-bias gather, patch merging's pad
COPY_CALLS = {"_get_relative_position_bias", "_patch_merging_pad"}


@dataclass(frozen=True)
class TracedOp:
    """One gpusim op of a traced node, for a batch of 1, with its output shape (batch first)."""

    op: Op
    shape: Shape


@dataclass(frozen=True)
class Mapping:
    """What a node becomes: its role for fusion, its ops, and whether it could not be mapped."""

    role: str
    ops: tuple[TracedOp, ...] = ()
    unmapped: bool = False


@dataclass(frozen=True)
class LoweredOp:
    """An op in the order the network runs it, with the names of the nodes fused into it.

    dtype: the gpusim dtype it runs in ('' until with_precision sets it); per_sample: its work grows
    with the batch (False for autocast's weight casts)."""

    op: Op
    shape: Shape
    node: str
    fused: tuple[str, ...] = ()
    dtype: str = ""
    per_sample: bool = True


def with_batch(op: Op, batch: int) -> Op:
    """The per-sample op `op` for `batch` samples (its kind's batch_fields grow linearly with the batch)."""
    return op.with_batch(batch)


def tensor_shapes(node: fx.Node) -> list[Shape]:
    """Shapes of the tensors a node produced during shape propagation (nested outputs flattened)."""
    meta = node.meta.get("tensor_meta")
    if meta is None:
        return []
    if hasattr(meta, "shape"):
        return [tuple(meta.shape)]
    items = meta.values() if isinstance(meta, dict) else meta
    return [tuple(m.shape) for m in items if hasattr(m, "shape")]


def tensor_inputs(node: fx.Node) -> list[fx.Node]:
    """The node's inputs that are tensors (not shapes, ints or None)."""
    return [a for a in node.all_input_nodes if tensor_shapes(a)]


def _numel(shape: Shape) -> int:
    return math.prod(shape)


def target_name(target: object) -> str:
    """A call's name: the method name, or the function's __name__ ('add', 'relu', 'cat')."""
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def map_node(node: fx.Node, name: str, module: nn.Module | None) -> Mapping:
    """Role and per-sample gpusim ops of one shape-propagated fx node; `name` names its ops."""
    outs = tensor_shapes(node)
    if node.op in ("placeholder", "get_attr", "output") or not outs or not _numel(outs[0]):
        return Mapping(FREE)
    ins = [tensor_shapes(a)[0] for a in tensor_inputs(node)]
    if module is not None:
        mapped = _map_module(module, node, name, ins, outs[0])
    else:
        mapped = _map_call(target_name(node.target), node, name, ins, outs[0])
    if mapped is not None:
        return mapped
    elements_in = sum(_numel(s) for s in ins) or _numel(outs[0])
    other = MemoryOp("other", elements_in, sum(_numel(s) for s in outs), name=name)
    return Mapping(MEMORY, (TracedOp(other, outs[0]),), unmapped=True)


def _one(role: str, op: Op, shape: Shape) -> Mapping:
    return Mapping(role, (TracedOp(op, shape),))


def _map_module(module: nn.Module, node: fx.Node, name: str, ins: list[Shape], out: Shape) -> Mapping | None:
    if isinstance(module, nn.Conv2d) and len(ins[0]) == 4:
        return _one(GEMM, _conv(module, ins[0], name), out)
    if isinstance(module, nn.Linear):
        return _one(
            GEMM, Linear(_numel(ins[0]) // module.in_features, module.in_features, module.out_features, name=name), out
        )
    if isinstance(module, ATTENTION_MODULES):
        return _attention_module(module, node, name)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return _one(NORM, MemoryOp("batchnorm", _numel(out), _numel(out), 2.0, name=name), out)
    if isinstance(module, nn.LayerNorm):
        features = math.prod(module.normalized_shape)
        return _one(MEMORY, layernorm(_numel(out) // features, features, name=name), out)
    if isinstance(module, ACTIVATION_MODULES):
        return _one(EPILOGUE, elementwise(_numel(out), name=name), out)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        return _one(MEMORY, _pool(ins[0], out, _window(module.kernel_size), name), out)
    if isinstance(module, nn.AdaptiveAvgPool2d) and _numel(out[2:]) == 1:
        return _one(MEMORY, _reduce(ins[0], out, name), out)  # ATen: adaptive_avg_pool2d to 1x1 is mean()
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return _one(MEMORY, _pool(ins[0], out, math.ceil(_numel(ins[0]) / _numel(out)), name), out)
    if isinstance(module, nn.Softmax):
        return _one(MEMORY, _softmax(out, module.dim, name), out)
    if isinstance(module, FREE_MODULES):
        return Mapping(FREE)
    return None


def _map_call(call: str, node: fx.Node, name: str, ins: list[Shape], out: Shape) -> Mapping | None:
    if call in FREE_CALLS:
        return Mapping(FREE)
    if call in ACTIVATIONS:
        return _one(EPILOGUE, elementwise(_numel(out), name=name), out)
    if call in BINARY:
        broadcast = len(ins) > 1 and any(s != out for s in ins) and not _has_constant(node)
        op = MemoryOp("elementwise", sum(_numel(s) for s in ins), _numel(out), 1.0, name=name)
        return _one(MEMORY if broadcast else EPILOGUE, op, out)
    if call == "adaptive_avg_pool2d" and _numel(out[2:]) == 1 or call in REDUCE_CALLS:
        return _one(MEMORY, _reduce(ins[0], out, name), out)
    if call in POOL_CALLS:
        return _one(MEMORY, _pool(ins[0], out, math.ceil(_numel(ins[0]) / _numel(out)), name), out)
    if call in SOFTMAX_CALLS:
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else -1)
        return _one(MEMORY, _softmax(out, dim, name), out)
    if call in CAT_CALLS:
        return _one(MEMORY, MemoryOp("elementwise", _numel(out), _numel(out), 0.0, name=name), out)
    if call in MATMUL_CALLS and len(ins) == 2:
        a = ins[0]
        return _one(GEMM, Matmul(max(1, _numel(out[:-2])), a[-2] if len(a) > 1 else 1, out[-1], a[-1], name=name), out)
    if call == "layer_norm":
        features = math.prod(node.args[1])
        return _one(MEMORY, layernorm(_numel(out) // features, features, name=name), out)
    if call == "shifted_window_attention":
        return Mapping(GEMM, _window_attention(node, name, ins[0]))
    if call in COPY_CALLS:
        return _one(MEMORY, MemoryOp("elementwise", _numel(out), _numel(out), 0.0, name=name), out)
    if call == "scaled_dot_product_attention":
        q, k, v = (tensor_shapes(a)[0] for a in node.args[:3])
        causal = bool(node.kwargs.get("is_causal", node.args[5] if len(node.args) > 5 else False))
        lead = (1, *q[1:-2]) if len(q) > 3 else (1,)
        return Mapping(GEMM, _attention(name, _numel(q[1:-2]), q[-2], k[-2], q[-1], v[-1], causal, lead))
    return None


def _has_constant(node: fx.Node) -> bool:
    """A binary op with a parameter or buffer operand (a per-channel scale: fusable like a bias)."""
    return any(a.op == "get_attr" for a in node.all_input_nodes)


def _conv(module: nn.Conv2d, shape: Shape, name: str) -> Conv2d:
    padding = module.padding
    if isinstance(padding, str):  # 'valid' or 'same' (odd kernels)
        padding = (
            (0, 0)
            if padding == "valid"
            else tuple(d * (k - 1) // 2 for d, k in zip(module.dilation, module.kernel_size))
        )
    _, c, h, w = shape
    return Conv2d(
        1,
        c,
        module.out_channels,
        h,
        w,
        tuple(module.kernel_size),
        tuple(module.stride),
        tuple(padding),
        tuple(module.dilation),
        module.groups,
        name=name,
    )


def _window(kernel_size: int | tuple[int, ...]) -> int:
    return kernel_size * kernel_size if isinstance(kernel_size, int) else math.prod(kernel_size)


def _pool(shape_in: Shape, shape_out: Shape, window: int, name: str) -> MemoryOp:
    return MemoryOp("pool", _numel(shape_in), _numel(shape_out), float(window), name=name)


def _reduce(shape_in: Shape, shape_out: Shape, name: str) -> MemoryOp:
    """A reduction of the innermost dimensions (global pooling over H x W, mean over the last dims)."""
    return MemoryOp("reduce", _numel(shape_in), _numel(shape_out), 1.0, name=name)


def _softmax(shape: Shape, dim: int, name: str) -> MemoryOp:
    features = shape[dim]
    return softmax(_numel(shape) // features, features, name=name)


def _attention_module(module: nn.Module, node: fx.Node, name: str) -> Mapping:
    """An attention module (planner.heads.ATTENTION_MODULES): its q/k/v projection(s) to heads x head_dim
    channels, scaled_dot_product_attention and the out projection back to embed_dim (in this order: the
    planner's head groups rely on it)."""
    q, k, v = (tensor_shapes(a)[0] for a in node.args[:3])
    seq = 1 if module.batch_first else 0
    rows_q, rows_kv = q[seq], k[seq]
    e, heads, d = module.embed_dim, module.num_heads, module.head_dim
    inner = heads * d
    if node.args[0] is node.args[1] is node.args[2]:
        proj = [TracedOp(Linear(rows_q, e, 3 * inner, name=f"{name}.in_proj"), (1, rows_q, 3 * inner))]
    else:
        proj = [
            TracedOp(Linear(rows, width, inner, name=f"{name}.{p}_proj"), (1, rows, inner))
            for p, rows, width in (("q", rows_q, q[-1]), ("k", rows_kv, k[-1]), ("v", rows_kv, v[-1]))
        ]
    core = _attention(name, heads, rows_q, rows_kv, d, d, False, (1, heads))
    out = TracedOp(Linear(rows_q, inner, e, name=f"{name}.out_proj"), (1, rows_q, e))
    return Mapping(GEMM, (*proj, *core, out))


def _attention(
    name: str, heads: int, lq: int, lk: int, d: int, dv: int, causal: bool, lead: Shape
) -> tuple[TracedOp, ...]:
    """scaled_dot_product_attention over `heads` independent heads per sample (output [*lead, lq, dv]);
    where V's head dim differs from Q's (no fused kernel for it), Q K^T, softmax and the product with V."""
    if d == dv:
        return (TracedOp(ScaledDotProductAttention(1, heads, lq, lk, d, causal, name=f"{name}.sdpa"), (*lead, lq, d)),)
    return (
        TracedOp(Matmul(heads, lq, lk, d, name=f"{name}.qk"), (*lead, lq, lk)),
        TracedOp(softmax(heads * lq, lk, name=f"{name}.softmax"), (*lead, lq, lk)),
        TracedOp(Matmul(heads, lq, dv, lk, name=f"{name}.av"), (*lead, lq, dv)),
    )


def _window_attention(node: fx.Node, name: str, shape: Shape) -> tuple[TracedOp, ...]:
    """torchvision's shifted_window_attention (Swin) as the kernels it launches on an [1, H, W, C] input:
    pad (a copy even without padding), roll (shifted windows), window partition (a copy), the qkv
    linear, the query scale, q/k/v made contiguous for matmul, Q K^T, the relative position bias (and,
    shifted, the mask) added, softmax, the product with V, the head merge (a copy), the projection,
    window reverse (a copy), the roll back and the final crop (a copy)."""
    kwargs = dict(zip(("window_size", "num_heads", "shift_size"), node.args[4:7])) | node.kwargs
    (ws0, ws1), heads = kwargs["window_size"], kwargs["num_heads"]
    _, h, w, c = shape
    ph, pw = -(-h // ws0) * ws0, -(-w // ws1) * ws1
    shifted = any(kwargs.get("shift_size", (0, 0))) and (ws0 < ph or ws1 < pw)
    tokens, win = ph * pw, ws0 * ws1
    windows, hd = tokens // win, c // heads
    scores = windows * heads * win * win

    def copy(label: str, n: int = tokens * c) -> TracedOp:
        return TracedOp(MemoryOp("elementwise", n, n, 0.0, name=f"{name}.{label}"), (1, n))

    def add(label: str, extra: int) -> TracedOp:
        return TracedOp(MemoryOp("elementwise", scores + extra, scores, 1.0, name=f"{name}.{label}"), (1, scores))

    return (
        copy("pad"),
        *((copy("roll"),) if shifted else ()),
        copy("partition"),
        TracedOp(Linear(tokens, c, 3 * c, name=f"{name}.qkv"), (1, tokens, 3 * c)),
        TracedOp(elementwise(tokens * c, name=f"{name}.scale"), (1, tokens, c)),
        *(copy(f"{t}_contiguous") for t in "qkv"),
        TracedOp(Matmul(windows * heads, win, win, hd, name=f"{name}.qk"), (1, windows * heads, win, win)),
        add("bias", heads * win * win),
        *((add("mask", windows * win * win),) if shifted else ()),
        TracedOp(softmax(windows * heads * win, win, name=f"{name}.softmax"), (1, windows * heads, win, win)),
        TracedOp(Matmul(windows * heads, win, hd, win, name=f"{name}.av"), (1, windows * heads, win, hd)),
        copy("merge_heads"),
        TracedOp(Linear(tokens, c, c, name=f"{name}.proj"), (1, tokens, c)),
        copy("reverse"),
        *((copy("roll_back"),) if shifted else ()),
        copy("crop", h * w * c),
    )


def lower(graph: nx.DiGraph, mode: str) -> list[LoweredOp]:
    """The per-sample ops of a traced graph in the order the network runs them, in `eager` or `fused` mode."""
    fused_into = fusion_anchors(graph) if mode == "fused" else {}
    absorbed: dict[str, list[str]] = {}
    for node, anchor in fused_into.items():
        absorbed.setdefault(anchor, []).append(node)
    lowered = []
    for node, data in graph.nodes(data=True):
        if node in fused_into:
            continue
        ops = data["ops"]
        for i, t in enumerate(ops):
            extra = tuple(absorbed.get(node, ())) if i == len(ops) - 1 else ()
            lowered.append(LoweredOp(t.op, t.shape, node, extra))
    return lowered


def fusion_anchors(graph: nx.DiGraph) -> dict[str, str]:
    """For fused mode: each node that runs inside a gemm's epilogue -> that gemm node (graph order is run order)."""
    chain: dict[str, str] = {}  # node -> gemm whose output chain ends at this node
    fused: dict[str, str] = {}
    for node, data in graph.nodes(data=True):
        role = data["role"]
        if role == GEMM:
            chain[node] = node
            continue
        inputs = [i for i in data["inputs"] if i in chain and _sole_consumer(graph, i, node)]
        if role == FREE and len(data["inputs"]) == 1 and inputs:
            chain[node] = chain[inputs[0]]
        elif role == NORM and inputs and chain[inputs[0]] == inputs[0]:
            fused[node] = chain[node] = inputs[0]
        elif role == EPILOGUE:
            same = [i for i in inputs if graph.nodes[i]["shape"] == data["shape"]]
            if same:
                fused[node] = chain[node] = chain[same[0]]
    return fused


def _sole_consumer(graph: nx.DiGraph, producer: str, consumer: str) -> bool:
    """Whether `consumer` is the only live reader of `producer`'s tensor (dead values, e.g. unused
    attention weights, do not count)."""
    users = [
        u
        for u in graph.successors(producer)
        if graph.nodes[u]["shape"] is not None and (graph.out_degree(u) or graph.nodes[u]["op_type"] == "output")
    ]
    return users == [consumer]


def with_precision(graph: nx.DiGraph, lowered: list[LoweredOp], precision: Precision, mode: str) -> list[LoweredOp]:
    """`lowered` with the gpusim dtype of every op, and autocast's cast kernels inserted (eager mode).
    Ops of nodes computed from parameters alone (Swin's relative position bias) do not grow with the batch."""
    batched = _batched(graph)
    lowered = [low if batched[low.node] else replace(low, per_sample=False) for low in lowered]
    if not precision.autocast or mode != "eager":
        return [replace(low, dtype=_plain_dtype(low.op, precision)) for low in lowered]
    by_node: dict[str, list[LoweredOp]] = {}
    for low in lowered:
        by_node.setdefault(low.node, []).append(low)
    dtype_of: dict[str, str] = {}  # node -> dtype of its output
    out: list[LoweredOp] = []
    for node, data in graph.nodes(data=True):
        inputs = [i for i in data["inputs"] if graph.nodes[i]["shape"] is not None]
        dtypes = [dtype_of.get(i, "fp32") for i in inputs]
        ops = by_node.get(node)
        if not ops:  # views and bookkeeping pass their input's dtype; inputs and parameters are fp32
            dtype_of[node] = dtypes[0] if dtypes else "fp32"
            continue
        kind = ops[0].op.kind
        if ops[0].op.gemm:
            want = precision.autocast
            out += _casts(graph, node, inputs, dtypes, want, batched, include_weights=True)
            out += [replace(low, dtype=want) for low in ops]
        elif kind in AUTOCAST_FP32_KINDS:
            want = "fp32"
            out += _casts(graph, node, inputs, dtypes, want, batched, include_weights=False)
            out += [_sized(low, [DTYPE_BYTES[want]], want, precision.autocast) for low in ops]
        else:
            want = "fp32" if "fp32" in dtypes else precision.autocast
            sizes = [DTYPE_BYTES[d] * _numel(graph.nodes[i]["shape"]) for i, d in zip(inputs, dtypes)]
            numel = sum(_numel(graph.nodes[i]["shape"]) for i in inputs)
            first = DTYPE_BYTES[dtypes[0]] if dtypes else DTYPE_BYTES[want]
            average = sum(sizes) / numel if numel else first
            out += [_sized(low, [average, first], want, precision.autocast) for low in ops]
        dtype_of[node] = want
    return out


def _batched(graph: nx.DiGraph) -> dict[str, bool]:
    """Per node: whether its value depends on the model's input (has a batch dimension)."""
    batched: dict[str, bool] = {}
    for node, data in graph.nodes(data=True):
        batched[node] = data.get("fx_op") == "placeholder" or any(batched.get(i, False) for i in data["inputs"])
    return batched


def _plain_dtype(op: Op, precision: Precision) -> str:
    """The dtype of the op's precision class (its kind's `precision`: conv, matmul or storage)."""
    return getattr(precision, op.precision)


def _sized(low: LoweredOp, in_sizes: list[float], out_dtype: str, group: str) -> LoweredOp:
    """A memory op reading `in_sizes[0]` bytes per input element (the second size when its input count
    is not the sum of its inputs, e.g. pooling) and writing out_dtype; priced in the `group` dtype."""
    op = low.op
    if not isinstance(op, MemoryOp):
        return replace(low, dtype=out_dtype)
    size = in_sizes[0] if len(in_sizes) == 1 or op.kind == "elementwise" else in_sizes[1]
    return replace(low, op=replace(op, in_bytes=size, out_bytes=DTYPE_BYTES[out_dtype]), dtype=group)


def _casts(
    graph: nx.DiGraph,
    node: str,
    inputs: list[str],
    dtypes: list[str],
    want: str,
    batched: dict[str, bool],
    include_weights: bool,
) -> Iterator[LoweredOp]:
    """Autocast's cast kernels before `node`: each input not in `want`, and (gemm nodes) each weight."""
    for i, d in zip(inputs, dtypes):
        if d != want:
            yield _cast(f"{node}.cast_{i}", graph.nodes[i]["shape"], d, want, node, batched[i])
    module = graph.nodes[node]["module"]
    if include_weights and module is not None:
        for pname, p in module.named_parameters():
            if p.dtype.is_floating_point:
                yield _cast(f"{node}.cast_{pname}", tuple(p.shape), "fp32", want, node, False)


def _cast(name: str, shape: Shape, src: str, dst: str, node: str, per_sample: bool) -> LoweredOp:
    n = _numel(shape)
    op = MemoryOp("cast", n, n, 1.0, DTYPE_BYTES[src], DTYPE_BYTES[dst], name=name)
    return LoweredOp(op, shape, node, dtype=dst, per_sample=per_sample)
