"""Trace a torch.nn.Module into a networkx DiGraph of gpusim ops with shapes (torch.fx + shape propagation)."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence

import networkx as nx
import torch
from torch import fx, nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.passes.shape_prop import ShapeProp

from gpusim.errors import WavecutError
from planner.heads import ATTENTION_MODULES
from planner.lowering import map_node, target_name, tensor_inputs, tensor_shapes


class UnmappedOpWarning(UserWarning):
    """Ops that have no gpusim equivalent and are priced as memory-bound ops of kind 'other'."""


class Tracer(fx.Tracer):
    """The default tracer, keeping attention modules (nn.MultiheadAttention, a head-pruned one) whole: lowered
    to linear + scaled_dot_product_attention + linear ops."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, ATTENTION_MODULES) or super().is_leaf_module(m, qualname)


def trace(model: nn.Module, example: torch.Tensor | Sequence[int], strict: bool = False) -> nx.DiGraph:
    """The op graph of `model` run on `example` (a tensor, or an input shape without the batch, e.g. (3, 224, 224)).

    Nodes are in run order, keyed by module path for modules ("layer1.0.conv1"; a module called again
    gets "_1", "_2") and by the fx node name otherwise ("add_3"). Node attributes: fx_name, fx_op
    (placeholder, get_attr, call_module, ...), op_type
    (module class or function name), module (or None), role and ops (see planner.lowering; ops are for a
    batch of 1), shape (output shape with batch 1, None for non-tensor values), inputs (tensor inputs),
    unmapped. Ops that cannot be mapped are priced as memory-bound ops and reported with an
    UnmappedOpWarning, or raise WavecutError when `strict`.
    """
    x = torch.zeros(1, *example) if not isinstance(example, torch.Tensor) else example[:1]
    tracer = Tracer()
    try:
        gm = fx.GraphModule(model, tracer.trace(model), type(model).__name__)
        _propagate_shapes(gm, x)
    except (fx.proxy.TraceError, RuntimeError, TypeError, ValueError) as exc:
        root = exc
        while root.__cause__ is not None:  # ShapeProp wraps the real error
            root = root.__cause__
        raise WavecutError(
            f"cannot trace {type(model).__name__} on input {tuple(x.shape)}: {str(root).splitlines()[0]}"
        ) from None
    graph = _build_graph(gm)
    unmapped = [n for n, d in graph.nodes(data=True) if d["unmapped"]]
    if unmapped:
        message = f"{len(unmapped)} op(s) have no gpusim equivalent and are priced as memory-bound ops: " + ", ".join(
            f"{n} ({graph.nodes[n]['op_type']})" for n in unmapped
        )
        if strict:
            raise WavecutError(message)
        warnings.warn(message, UnmappedOpWarning, stacklevel=2)
    return graph


def _propagate_shapes(gm: fx.GraphModule, x: torch.Tensor) -> None:
    """Record every node's output shape: with fake tensors (no arithmetic, so fast whatever the CPU load),
    or by running the model for real where an op has no fake-tensor kernel (custom C++ ops)."""
    with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints failures itself
        try:
            ShapeProp(gm, fake_mode=FakeTensorMode(allow_non_fake_inputs=True)).propagate(x)
        except Exception:  # noqa: BLE001 - any failure of the fake path: fall back to the real forward
            ShapeProp(gm).propagate(x)


def _build_graph(gm: fx.GraphModule) -> nx.DiGraph:
    graph = nx.DiGraph()
    names: dict[fx.Node, str] = {}
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        module = gm.get_submodule(node.target) if node.op == "call_module" else None
        name = _node_name(node, calls)
        names[node] = name
        mapping = map_node(node, name, module)
        shapes = tensor_shapes(node) or _output_shapes(node)
        inputs = tuple(dict.fromkeys(names[a] for a in tensor_inputs(node)))
        graph.add_node(
            name,
            fx_name=node.name,
            fx_op=node.op,
            op_type=type(module).__name__ if module is not None else target_name(node.target),
            module=module,
            role=mapping.role,
            ops=mapping.ops,
            shape=shapes[0] if shapes else None,
            inputs=inputs,
            unmapped=mapping.unmapped,
        )
        graph.add_edges_from((names[a], name) for a in node.all_input_nodes)
    return graph


def _output_shapes(node: fx.Node) -> list[tuple[int, ...]]:
    """The output node's shapes: those of the tensors the model returns (consumers of a producer's value)."""
    if node.op != "output":
        return []
    return [s for a in node.all_input_nodes for s in tensor_shapes(a)]


def _node_name(node: fx.Node, calls: dict[str, int]) -> str:
    if node.op != "call_module":
        return node.name
    count = calls.get(node.target, 0)
    calls[node.target] = count + 1
    return node.target if count == 0 else f"{node.target}_{count}"
