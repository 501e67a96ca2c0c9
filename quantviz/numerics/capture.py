"""Capture every intermediate value of one graph run: an fx Interpreter that keeps what each node produced.

No hooks or global state: the values live in the returned dict. ``substitutes`` replaces the value of named nodes
for the rest of the run (what the node computed is still what is kept), so a graph can be fed another run's
values at chosen points.

Example::

    values = capture_values(graph_module, (x,))
    values["conv1"].shape
    local = capture_values(graph_module, (x,), substitutes={"quantize_1": runtime_value})
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import fx

from quantviz.model_spec import Batch, flat_inputs


class _Recorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule, keep: Callable[[fx.Node], bool], substitutes: dict[str, Any]):
        super().__init__(gm, garbage_collect_values=False)
        self.keep = keep
        self.substitutes = substitutes
        self.values: dict[str, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        if self.keep(n):
            self.values[n.name] = out.detach() if isinstance(out, torch.Tensor) else out
        sub = self.substitutes.get(n.name)
        if isinstance(sub, torch.Tensor) and isinstance(out, torch.Tensor) and sub.shape == out.shape:
            return sub.to(out.dtype)
        return out


def capture_values(gm: fx.GraphModule, inputs: tuple, keep: Callable[[fx.Node], bool] | None = None,
                   substitutes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``gm`` on ``inputs``; returns node name -> value for every node ``keep`` accepts (default: all).
    A node named in ``substitutes`` passes that tensor on instead of its own value (when the shapes agree)."""
    rec = _Recorder(gm, keep or (lambda n: True), substitutes or {})
    with torch.no_grad():
        # a Batch (keyword inputs): an exported module's graph takes the flat leaves, in its in_spec's order
        rec.run(*(flat_inputs(inputs) if isinstance(inputs, Batch) else inputs))
    return rec.values
