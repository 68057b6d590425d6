"""Module inputs on one calibration batch over a model that is pruned group by group, without rerunning the
unchanged front of the network for every group.

Compensation (planner.importance.compensation) refits each group on the model as pruned so far, so it needs
its consumers' inputs after every earlier group's changes. A plain forward pass per group reruns every layer
in front of them: on efficientnet_v2_l (71 pruned groups) that was 70 of the 89 s `wavecut apply` took.
Nothing in front of the earliest layer a group changes can differ from the previous pass, so the forward
pass is traced once (torch.fx) and each pass resumes from the values the previous one saved at the earliest
node of the group about to change: the tensors computed before that node and read at or after it (cloned,
since in-place ops downstream, e.g. ``out += identity``, would overwrite them). Every layer still runs on the
live model, so the inputs are those of a full pass (tests/test_compensation_resume.py checks the pruned
weights are bitwise equal). A model torch.fx cannot trace gets a full pass every time.

Written here rather than taken from a library: torch.fx's Interpreter runs a graph from a pre-filled
environment, but nothing in torch or Torch-Pruning knows which part of a network a pruning step leaves
unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import fx, nn

from .signatures import capture

# The values a pass resumes from: (position of the first node to run, node -> value before it)
Checkpoint = tuple[int, dict[fx.Node, object]]


class _Resume(fx.Interpreter):
    """Runs the traced graph against the live model from a checkpoint, saving a new one at `save_at`."""

    def __init__(self, model: nn.Module, graph: fx.Graph, save_at: fx.Node | None, live: list[fx.Node]) -> None:
        super().__init__(model, graph=graph)
        self.save_at, self.live = save_at, live
        self.saved: dict[fx.Node, object] | None = None

    def run_node(self, n: fx.Node) -> object:
        """Run one node, first saving the values live at it when it is the save point."""
        if n is self.save_at:
            self.saved = {v: _copy(self.env[v]) for v in self.live}
        return super().run_node(n)


def consumer_inputs(
    model: nn.Module,
    modules: Sequence[nn.Module],
    calibration: torch.Tensor,
    forward: Callable[[torch.Tensor], object] | None = None,
) -> dict[nn.Module, torch.Tensor]:
    """Input of every one of `modules` on `calibration` in eval mode, ``[N, C, *spatial]`` or ``[N, F]``, by one
    forward pass (`forward`, default the model's own; ConsumerInputs resumes one part-way)."""
    was_training = model.training
    model.eval()
    try:
        return capture(model, modules, calibration, "input", lambda t: t.detach().float(), forward=forward)
    finally:
        model.train(was_training)


def _stateless(module: nn.Module) -> bool:
    """Whether `module` has neither parameters nor buffers."""
    return next(module.parameters(), None) is None and next(module.buffers(), None) is None


def _copy(value: object) -> object:
    """A tensor cloned (in-place ops downstream must not reach a saved value); anything else as it is."""
    return value.clone() if isinstance(value, torch.Tensor) else value


class ConsumerInputs:
    """Inputs of chosen modules on `calibration` (eval mode), pass after pass, while the model changes
    between passes only in the modules each pass names as about to change (see the module doc)."""

    def __init__(self, model: nn.Module, calibration: torch.Tensor) -> None:
        from planner.trace import Tracer  # planner.trace imports the planner's lowering, which is heavier

        self.model, self.calibration = model, calibration
        self.checkpoint: Checkpoint | None = None
        was_training = model.training
        model.eval()  # trace the eval branches (e.g. stochastic depth) that every pass runs
        try:
            self.graph: fx.Graph | None = Tracer().trace(model)
        except Exception:  # noqa: BLE001 - any model fx cannot trace gets full passes
            self.graph = None
        finally:
            model.train(was_training)
        if self.graph is None:
            return
        nodes = list(self.graph.nodes)
        position = {node: i for i, node in enumerate(nodes)}
        first_read: dict[str, int] = {}  # module path -> first node that calls it, one of its children or attributes
        for i, node in enumerate(nodes):
            if node.op in ("call_module", "get_attr"):
                parts = str(node.target).split(".")
                for depth in range(1, len(parts) + 1):
                    first_read.setdefault(".".join(parts[:depth]), i)
        self.first_read = {module: first_read.get(name) for name, module in model.named_modules()}
        self.nodes = nodes
        self.last_read = [max((position[u] for u in v.users), default=i) for i, v in enumerate(nodes)]

    def earliest(self, modules: Iterable[object]) -> int:
        """Position of the first node that reads any of `modules` (0 for one the graph does not show); a module
        outside the model without parameters or buffers (Torch-Pruning's stand-ins for additions, concatenations,
        reshapes) holds nothing that can change."""
        first = len(self.nodes)
        for module in modules:
            if isinstance(module, nn.Module) and module not in self.first_read and _stateless(module):
                continue
            read = self.first_read.get(module) if isinstance(module, nn.Module) else None
            if read is None:
                return 0
            first = min(first, read)
        return first

    def changed(self, modules: Iterable[object]) -> None:
        """Note that `modules` changed: a checkpoint past their first node no longer holds."""
        if self.checkpoint is not None and self.graph is not None and self.earliest(modules) < self.checkpoint[0]:
            self.checkpoint = None

    def __call__(self, modules: Sequence[nn.Module], changing: Iterable[object]) -> dict[nn.Module, torch.Tensor]:
        """Input of every one of `modules` on the calibration batch (consumer_inputs); `changing`: the modules
        that will change before the next call (the pass saves the values in front of the first of them)."""
        if self.graph is None:
            return consumer_inputs(self.model, modules, self.calibration)
        save_at = self.earliest(changing)
        start, values = self.checkpoint or (0, {})
        live = [v for i, v in enumerate(self.nodes[:save_at]) if self.last_read[i] >= save_at]
        at = self.nodes[save_at] if save_at < len(self.nodes) else None
        resume = _Resume(self.model, self.graph, at, live)
        env = dict.fromkeys(self.nodes[:start]) | {v: _copy(x) for v, x in values.items()}
        inputs = consumer_inputs(self.model, modules, self.calibration, lambda x: resume.run(x, initial_env=env))
        if resume.saved is not None:
            self.checkpoint = (save_at, resume.saved)
        elif save_at < start:  # the changes begin before the checkpoint, and this pass stopped short of them
            self.checkpoint = None
        return inputs
