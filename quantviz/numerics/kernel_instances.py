"""Per kernel instance: every quantviz operator of the fused program, fed the int8/uint8 inputs it really gets
when the model runs, against the reference pattern (dequantize -> float op -> quantize) on the same inputs.

Example::

    rows = kernel_instances(fused_edge, batches)
    rows[0]   # worst first: KernelInstance(node='conv2d_default', op='conv2d', max_lsb=1, histogram={0: ..., 1: 3})
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
from torch import fx

from quantviz.model_spec import Batch, flat_inputs


@dataclass
class KernelInstance:
    node: str
    op: str
    elements: int = 0
    max_lsb: int = 0
    share_off: float = 0.0          # share of elements off by at least one LSB
    histogram: dict[str, int] = field(default_factory=dict)  # "0", "1", "2", ... ">=8" LSB -> element count

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def has_delegates(gm: fx.GraphModule) -> bool:
    return any(n.op == "call_function" and "call_delegate" in str(n.target) for n in gm.graph.nodes)


def _op_name(target: Any) -> str | None:
    text = str(target)
    if "quantviz" not in text:
        return None
    return text.split("quantviz.")[-1].split(".")[0]


class _KernelRecorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule):
        super().__init__(gm)
        self.calls: list[tuple[str, str, tuple, torch.Tensor]] = []

    def call_function(self, target, args, kwargs):
        out = super().call_function(target, args, kwargs)
        op = _op_name(target)
        if op is not None:
            self.calls.append((self.current_node_name, op, args, out))
        return out

    def run_node(self, n):
        self.current_node_name = n.name
        return super().run_node(n)


def kernel_instances(fused_edge, batches: list[tuple],
                     kernels: dict[str, Callable[..., torch.Tensor]] | None = None) -> list[KernelInstance]:
    """Compare each quantviz op instance with its reference on the model's own data, worst first.

    ``kernels`` replaces an op's kernel by name (tests use it to plant a wrong kernel); by default the output the
    op produced during the run is compared.
    """
    from quantviz_kernels import load
    from quantviz_kernels.reference import reference

    load()
    gm = fused_edge.exported_program().module()
    found: dict[str, KernelInstance] = {}
    diffs: dict[str, list[torch.Tensor]] = {}
    for batch in batches:
        rec = _KernelRecorder(gm)
        with torch.no_grad():
            rec.run(*(flat_inputs(batch) if isinstance(batch, Batch) else batch))  # the module's flat inputs
        for node, op, args, out in rec.calls:
            got = kernels[op](*args) if kernels and op in kernels else out
            ref = reference(op, *args)
            diffs.setdefault(node, []).append((got.int() - ref.int()).abs().flatten())
            found.setdefault(node, KernelInstance(node, op))
    rows = []
    for node, inst in found.items():
        d = torch.cat(diffs[node])
        inst.elements = d.numel()
        inst.max_lsb = int(d.max()) if d.numel() else 0
        inst.share_off = float((d >= 1).double().mean()) if d.numel() else 0.0
        counts = torch.bincount(d.clamp(max=8))
        inst.histogram = {(str(i) if i < 8 else ">=8"): int(c) for i, c in enumerate(counts.tolist()) if c}
        rows.append(inst)
    rows.sort(key=lambda r: (-r.max_lsb, -r.share_off))
    return rows
