"""Capture every intermediate value of one graph run: an fx Interpreter that keeps what each node produced.

No hooks or global state: the values live in the returned dict.

Example::

    values = capture_values(graph_module, (x,))
    values["conv1"].shape
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import fx


class _Recorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule, keep: Callable[[fx.Node], bool]):
        super().__init__(gm, garbage_collect_values=False)
        self.keep = keep
        self.values: dict[str, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        if self.keep(n):
            self.values[n.name] = out.detach() if isinstance(out, torch.Tensor) else out
        return out


def capture_values(gm: fx.GraphModule, inputs: tuple, keep: Callable[[fx.Node], bool] | None = None) -> dict[str, Any]:
    """Run ``gm`` on ``inputs``; returns node name -> value for every node ``keep`` accepts (default: all)."""
    rec = _Recorder(gm, keep or (lambda n: True))
    with torch.no_grad():
        rec.run(*inputs)
    return rec.values
