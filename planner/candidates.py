"""Pricing channel widths: a traced network whose ops follow the channel groups' widths, and each group's step edges.

Latency is additive over ops and a group's width changes only the ops that read or write its
channels, so a group is priced by re-predicting just those ops (one vectorised gpusim call for all
its candidate widths). Every channel-dependent field of an op scales with its group's width:
conv/linear in and out channels, a depthwise conv's groups, and the element counts of memory-bound
ops (BN, activations, adds, pooling, SE scales), so `ops(widths)` is exactly what tracing the pruned
model gives.

Alignment (widths are multiples of it, so tensor-core tiles stay whole): 8 for fp16/bf16 (16-byte
vectors), 4 for tf32, 16 for int8, 1 for fp32 (CUDA cores have no tile-shape rule). Minimum width:
max(8, 10% of the full width), rounded up to the alignment; a group never exceeds its full width.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

import gpusim
from gpusim.eager import check_plain_precision, predict_mixed, resolve_precision
from gpusim.errors import WavecutError
from gpusim.ops import Conv2d, Linear, MemoryOp, Op
from gpusim.predict import LoweredOps
from gpusim.staircase import StairPoint, step_edges
from planner.groups import ChannelGroup
from planner.lowering import CAT_CALLS, GEMM, with_batch, with_precision

if TYPE_CHECKING:  # planner.network prices width vectors with WidthModel, so only the annotation is imported here
    from planner.network import Network

# Channel multiple per precision (gpusim.eager's names): tensor-core MMA K/N granularity of the GEMM dtype.
ALIGNMENT = {"fp16": 8, "bf16": 8, "amp-fp16": 8, "amp-bf16": 8, "tf32": 4, "int8": 16, "fp8": 16, "fp32": 1}
ALIGNMENT["fp32-strict"] = ALIGNMENT["fp32"]
MIN_CHANNELS = 8
MIN_FRACTION = 0.1


def alignment(dtype: str) -> int:
    """The channel multiple that keeps `dtype`'s tensor-core tiles whole."""
    return ALIGNMENT[dtype]


def minimum_width(full: int, align: int, floor: int = MIN_CHANNELS, fraction: float = MIN_FRACTION) -> int:
    """The narrowest width a group may take: max(floor, fraction of full), rounded up to `align`, at most full."""
    return min(full, _round_up(max(floor, math.ceil(fraction * full)), align))


def allowed_widths(full: int, align: int, min_width: int) -> list[int]:
    """Aligned widths from min_width to full, plus full itself (which is always allowed)."""
    return sorted({*range(_round_up(min_width, align), full + 1, align), full})


def group_widths(group: ChannelGroup, align: int) -> list[int]:
    """The widths the planner may give `group`: a locked group its full width; a head group 1 to all its heads
    (alignment is for channels; head_dim stays whole); a channel group allowed_widths from minimum_width, in
    steps of the alignment and of the group count of the grouped convs it touches."""
    if not group.prunable:
        return [group.full_width]
    if group.head_dim:
        return list(range(1, group.full_width + 1))
    step = group.width_multiple(align)
    return allowed_widths(group.full_width, step, minimum_width(group.full_width, step))


def _round_up(value: int, align: int) -> int:
    return -(-value // align) * align


Composition = tuple[tuple[int, int], ...]  # a tensor's channels in order: (group index or -1 fixed, count)


@dataclass(frozen=True)
class _Scaled:
    """How one op depends on the groups: each scaled field with the channel composition it follows."""

    fields: tuple[tuple[str, Composition], ...]  # (op field, composition of the channels it counts)
    inputs: tuple[tuple[int, Composition], ...] = ()  # memory ops: (elements, composition) per input tensor


class WidthModel:
    """A traced network whose ops follow per-group widths, for one GPU, batch, dtype and mode."""

    def __init__(
        self, network: Network, groups: list[ChannelGroup], gpu: str | gpusim.GpuSpec, batch: int, dtype: str, mode: str
    ) -> None:
        self.network, self.groups = network, groups
        self.spec = gpusim.load_spec(gpu)
        self.batch, self.dtype, self.mode = batch, dtype, mode
        self.full = np.array([g.full_width for g in groups], dtype=np.int64)
        # The same precision pipeline as Network.predict (fp32 = PyTorch's defaults: TF32 convs on sm80+),
        # so a plan's latency is the one its pruned model is reported at.
        precision = resolve_precision(check_plain_precision(dtype), self.spec)
        lowered = with_precision(network.graph, network.lowered(mode), precision, mode)
        self.names = [low.node for low in lowered]
        self.op_dtypes = [low.dtype for low in lowered]
        self.base_ops: list[Op] = [with_batch(low.op, batch) if low.per_sample else low.op for low in lowered]
        comps = _channel_compositions(network, groups)
        heads = _head_compositions(network, groups)
        self.scaled = [_scaling(network, low.node, low.op, comps, heads.get(low.node, ())) for low in lowered]
        self.deps = [tuple(sorted(_groups_of(s))) for s in self.scaled]  # the groups each op follows
        self.ops_of: list[list[int]] = [[] for _ in groups]  # op indices that read or write each group
        for i, deps in enumerate(self.deps):
            for g in deps:
                self.ops_of[g].append(i)
        self._neighbours = [{h for i in ops for h in self.deps[i]} - {g} for g, ops in enumerate(self.ops_of)]
        # Op i at some widths is fully described by its shape class and the widths of the groups in
        # key_groups[i]; ops of one class (repeated blocks) at the same widths are one op to price.
        classes: dict[tuple, int] = {}
        self.shape_class: list[int] = []
        self.key_groups: list[tuple[int, ...]] = []
        for op, sc, op_dtype in zip(self.base_ops, self.scaled, self.op_dtypes):
            key_groups = tuple(dict.fromkeys(g for _, c in (*sc.fields, *sc.inputs) for g, _ in c if g >= 0))
            local = {g: k for k, g in enumerate(key_groups)}
            shape = (
                dataclasses.replace(op, name=""),
                tuple((f, _relabel(c, local)) for f, c in sc.fields),
                tuple((n, _relabel(c, local)) for n, c in sc.inputs),
                op_dtype,
            )
            self.shape_class.append(classes.setdefault(shape, len(classes)))
            self.key_groups.append(key_groups)
        self._priced: dict[tuple[int, ...], float] = {}  # (shape class, widths of key groups) -> time (us)

    def op_at(self, i: int, widths: np.ndarray) -> Op:
        """Op i with every group at `widths`."""
        s, op = self.scaled[i], self.base_ops[i]
        if not s.fields:
            return op
        change = {f: _scale(getattr(op, f), c, widths) for f, c in s.fields}
        if s.inputs:
            if op.elements_in == self.batch * sum(n for n, _ in s.inputs):
                change["elements_in"] = self.batch * sum(_scale(n, c, widths) for n, c in s.inputs)
            else:
                change["elements_in"] = op.elements_in * change["elements_out"] // op.elements_out
        return dataclasses.replace(op, **change)

    def ops(self, widths: np.ndarray) -> list[Op]:
        """Every op of the network with the groups at `widths`."""
        return [self.op_at(i, widths) for i in range(len(self.base_ops))]

    def predict(self, widths: np.ndarray) -> gpusim.Prediction:
        """Full-network prediction with the groups at `widths`."""
        return predict_mixed(self.ops(widths), self.op_dtypes, self.spec)

    def latency(self, widths: np.ndarray) -> float:
        """Total predicted latency (us) with the groups at `widths`."""
        return float(self.op_times([(i, widths) for i in range(len(self.base_ops))]).sum())

    def latencies(self, configs: list[np.ndarray]) -> list[float]:
        """Total latency of each width vector in `configs` (at most one gpusim call)."""
        return (
            self.op_time_matrix(np.array(configs, np.int64).reshape(len(configs), len(self.full))).sum(axis=1).tolist()
        )

    def op_times(self, requests: list[tuple[int, np.ndarray]]) -> np.ndarray:
        """Time (us) of op i with the groups at `widths`, for each (i, widths) request.

        An op's time depends only on its shape and the widths of its own groups, so each distinct op is priced
        once per model and remembered; the ops not priced yet go to gpusim in one call."""
        keys, missing = [], {}
        for i, widths in requests:
            key = (self.shape_class[i], *(int(widths[g]) for g in self.key_groups[i]))
            keys.append(key)
            if key not in self._priced and key not in missing:
                missing[key] = i, self.op_at(i, widths)
        self._price(missing)
        return np.array([self._priced[k] for k in keys], dtype=np.float64)

    def op_time_matrix(self, widths: np.ndarray) -> np.ndarray:
        """Time (us) of every op (columns, run order) at every width vector (rows of `widths`), vectorised.

        The same prices as `op_times`: per op class, the rows of its key groups' widths are deduplicated
        with numpy, the distinct ones not priced yet go to gpusim in one call, and prices are gathered back."""
        widths = np.asarray(widths, dtype=np.int64)
        widths = widths[None, :] if widths.ndim == 1 else widths
        count = len(widths)
        by_class: dict[int, list[int]] = {}
        for i, c in enumerate(self.shape_class):
            by_class.setdefault(c, []).append(i)
        found: list[tuple[list[int], list[tuple[int, ...]], np.ndarray]] = []  # ops, distinct keys, inverse
        missing: dict[tuple[int, ...], Op] = {}
        for c, ops in by_class.items():
            rows = np.concatenate([widths[:, list(self.key_groups[i])] for i in ops])
            distinct, first, inverse = _distinct_rows(rows)
            keys = [(c, *row) for row in distinct.tolist()]
            for key, at in zip(keys, first.tolist()):
                if key not in self._priced and key not in missing:
                    missing[key] = ops[at // count], self.op_at(ops[at // count], widths[at % count])
            found.append((ops, keys, inverse.reshape(len(ops), count)))
        self._price(missing)
        table = np.empty((count, len(self.base_ops)), dtype=np.float64)
        for ops, keys, inverse in found:
            table[:, ops] = np.array([self._priced[k] for k in keys], dtype=np.float64)[inverse.T]
        return table

    def _price(self, missing: dict[tuple[int, ...], tuple[int, Op]]) -> None:
        """Price the (op index, op) of each key in one gpusim call per dtype, and remember the times."""
        keys, entries = list(missing), list(missing.values())
        by_dtype: dict[str, list[int]] = {}
        for k, (i, _) in enumerate(entries):
            by_dtype.setdefault(self.op_dtypes[i], []).append(k)
        for dtype, at in by_dtype.items():
            times = LoweredOps([entries[k][1] for k in at], self.spec, dtype).op_times()
            self._priced.update(zip((keys[k] for k in at), times.tolist()))

    def group_tables(self, requests: list[tuple[int, list[int]]], widths: np.ndarray) -> list[np.ndarray]:
        """For each (group, candidate widths): latency of the group's ops at each candidate, others at `widths`.

        At most one gpusim call for all requests."""
        pairs: list[tuple[int, np.ndarray]] = []
        for g, cands in requests:
            for c in cands:
                w = widths.copy()
                w[g] = c
                pairs.extend((i, w) for i in self.ops_of[g])
        times = self.op_times(pairs)
        tables, at = [], 0
        for g, cands in requests:
            n = len(self.ops_of[g])
            tables.append(times[at : at + n * len(cands)].reshape(len(cands), n).sum(axis=1))
            at += n * len(cands)
        return tables

    def group_launches(self, g: int, cands: list[int], widths: np.ndarray) -> list[list[gpusim.KernelLaunch]]:
        """The main (longest) launch of each of group g's ops at each candidate width, others at `widths`."""
        ops = []
        for c in cands:
            w = widths.copy()
            w[g] = c
            ops.extend(self.op_at(i, w) for i in self.ops_of[g])
        dtypes = [self.op_dtypes[i] for i in self.ops_of[g]] * len(cands)
        main = predict_mixed(ops, dtypes, self.spec).main_launches()
        n = len(self.ops_of[g])
        return [main[k * n : (k + 1) * n] for k in range(len(cands))]

    def neighbours(self, g: int) -> set[int]:
        """Groups that share an op with group g (their prices change when g's width does)."""
        return self._neighbours[g]


def _distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """np.unique(rows, axis=0) with first indices and inverse, through one int64 code per row where the
    widths fit (sorting one column is ~30x faster than sorting rows); rows without columns are one row."""
    if not rows.shape[1] or not len(rows):
        return rows[:1], np.zeros(min(len(rows), 1), np.int64), np.zeros(len(rows), np.int64)
    span = rows.max(axis=0) + 1
    if float(np.prod(span.astype(np.float64))) >= 2.0**62:
        return np.unique(rows, axis=0, return_index=True, return_inverse=True)
    codes = rows @ np.cumprod(np.concatenate([[1], span[:-1]]))
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    return rows[first], first, inverse


def _relabel(comp: Composition, local: dict[int, int]) -> Composition:
    """`comp` with group indices replaced by their position among an op's key groups (for shape classes)."""
    return tuple((local.get(g, -1), n) for g, n in comp)


def _groups_of(s: _Scaled) -> set[int]:
    return {g for _, c in (*s.fields, *s.inputs) for g, _ in c if g >= 0}


def _scale(value: int, comp: Composition, widths: np.ndarray) -> int:
    """`value` (a channel count or element count over the channels of `comp`) with each group at its width:
    value / channels is the per-channel factor (spatial size, batch), checked whole when the op is built."""
    if not _follows(comp):
        return value
    channels = sum(n for _, n in comp)
    return value // channels * sum(n if g < 0 else int(widths[g]) for g, n in comp)


def _channel_compositions(network: Network, groups: list[ChannelGroup]) -> dict[str, Composition]:
    """The channels of each node's output: conv/linear outputs are one group's (or fixed); a channel concat
    (torch.cat on dim 1) joins its inputs' compositions in order; every other node carries its first tensor
    input's channels (BN, activations, adds, pooling, flatten, SE)."""
    out_group = {name: i for i, g in enumerate(groups) if g.prunable and not g.head_dim for name in g.producers}
    comps: dict[str, Composition] = {}
    graph = network.graph
    for node, data in graph.nodes(data=True):
        inputs = data["inputs"]
        if data["role"] == GEMM:
            g = out_group.get(node)
            comps[node] = ((g, int(groups[g].full_width)),) if g is not None else ((-1, _channels(data)),)
        elif data["op_type"] in CAT_CALLS and _is_channel_concat(graph, node):
            comps[node] = tuple(seg for i in inputs for seg in comps.get(i, ((-1, _channels(graph.nodes[i])),)))
        else:
            comps[node] = comps.get(inputs[0], ()) if inputs else ()
    return comps


def _channels(data: dict) -> int:
    """A node's output channel count: a conv's or linear's output width, else its shape's second dimension."""
    ops = data["ops"]
    if len(ops) == 1 and isinstance(ops[0].op, Conv2d):
        return ops[0].op.out_channels
    if len(ops) == 1 and isinstance(ops[0].op, Linear):
        return ops[0].op.out_features
    shape = data["shape"]
    return int(shape[1]) if shape is not None and len(shape) > 1 else 1


def _is_channel_concat(graph, node: str) -> bool:
    """Whether a cat node joins its (distinct) inputs along the channel dimension."""
    shapes = [graph.nodes[i]["shape"] for i in graph.nodes[node]["inputs"]]
    out = graph.nodes[node]["shape"]
    return (
        out is not None
        and len(shapes) > 1
        and all(s is not None and len(s) == len(out) > 1 for s in shapes)
        and sum(s[1] for s in shapes) == out[1]
    )


def _head_compositions(network: Network, groups: list[ChannelGroup]) -> dict[str, Composition]:
    """Per attention node whose module is a prunable head group: the group's heads as a composition (every
    call of the module follows the group; its first call's node is named by the module path)."""
    by_name = {g.name: i for i, g in enumerate(groups) if g.head_dim and g.prunable}
    first: dict[int, str] = {}  # module id -> the node of its first call
    heads = {}
    for node, data in network.graph.nodes(data=True):
        if data["module"] is not None:
            g = by_name.get(first.setdefault(id(data["module"]), node))
            if g is not None:
                heads[node] = ((g, int(groups[g].full_width)),)
    return heads


def _node_sides(
    data: dict, op: Op, src: Composition, out: Composition, heads: Composition
) -> tuple[Composition, Composition] | None:
    """The compositions of op `op`'s input and output channels within its node: for an attention node with a
    head group (planner.lowering._attention_module's order: q/k/v projections, attention core, out
    projection), the projections read `src` and write heads, the core works on heads, the out projection
    reads heads and writes `out`; a one-op node reads `src` and writes `out`; None for other multi-op nodes."""
    ops = [t.op for t in data["ops"]]
    if len(ops) == 1:
        return src, out
    if not heads:
        return None  # multi-op nodes without a head group (attention) touch only locked groups
    j = next(i for i, o in enumerate(ops) if o.name == op.name)  # names are unique within a node
    core = next(i for i, o in enumerate(ops) if not isinstance(o, Linear))
    return (src if j < core else heads), (out if j == len(ops) - 1 else heads)


def _scaling(network: Network, node: str, op: Op, comps: dict[str, Composition], heads: Composition = ()) -> _Scaled:
    """Which fields of `node`'s op follow which channel compositions (only those containing a prunable group);
    `heads`: the head group of an attention node."""
    data = network.graph.nodes[node]
    src = comps.get(data["inputs"][0], ()) if data["inputs"] else ()
    sides = _node_sides(data, op, src, comps[node], heads)
    if sides is None:
        return _Scaled(())
    src, out = sides
    fields = [(f.name, src if f.side == "in" else out) for f in op.channel_fields()]  # the op kind's own
    inputs: tuple[tuple[int, Composition], ...] = ()
    if isinstance(op, MemoryOp) and _follows(out):  # its elements_in: the sum over its input tensors
        shapes = [network.graph.nodes[i]["shape"] for i in data["inputs"]]
        inputs = tuple((math.prod(s), comps.get(i, ())) for s, i in zip(shapes, data["inputs"]))
    scaled = _Scaled(tuple((f, c) for f, c in fields if _follows(c)), tuple((n, c) for n, c in inputs))
    for value, comp in [(getattr(op, f), c) for f, c in scaled.fields] + [(n, c) for n, c in scaled.inputs]:
        if _follows(comp) and value % sum(n for _, n in comp):
            raise WavecutError(
                f"cannot plan {network.name}: {node} ({data['op_type']}) has {value} channel elements, not a whole "
                f"multiple of its {sum(n for _, n in comp)} input channels (an op that mixes channels "
                f"the planner cannot follow)"
            )
    return scaled


def _follows(comp: Composition) -> bool:
    return any(g >= 0 for g, _ in comp)


def right_edges(widths: list[int], table: np.ndarray) -> list[int]:
    """The right edge of each latency step: the widths priced lower than every larger width."""
    points = [StairPoint(w, float(t), "", 0, 0, 0, 0.0) for w, t in zip(widths, table)]
    return [p.value for p in step_edges(points)]


def candidate_widths(model: WidthModel, allowed: list[list[int]], widths: np.ndarray) -> list[list[int]]:
    """Each group's step edges among its allowed widths, the other groups at `widths` (one gpusim call)."""
    tables = model.group_tables(list(enumerate(allowed)), widths)
    return [right_edges(a, t) for a, t in zip(allowed, tables)]
