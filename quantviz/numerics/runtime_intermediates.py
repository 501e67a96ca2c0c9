"""Per-op outputs inside the ExecuTorch runtime, against the same ops run ahead of time.

The runtime writes every operator's output to a debug buffer when the program is loaded with an ETDump and a
debug buffer (``enable_etdump=True, debug_buffer_size=...``); ``executorch.devtools.Inspector`` reads them back
as events in execution order. Each kernel event is matched with the fuse stage's graph by operator and order of
execution (the k-th ``quantviz::conv2d.out`` call is the k-th ``quantviz.conv2d`` node), and compared with that
node's value when the fused program runs ahead of time in PyTorch. Delegate calls are one event each: the ops
inside them have no per-op output, and the table says so.

Example::

    rows = runtime_intermediates(pipe, batch)
    rows[0]   # RuntimeOpRow(index=0, op='quantize_per_tensor', node='quantize_per_tensor_default', ...)
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import fx

from quantviz.numerics.metrics import sqnr_db

_SKIP_EVENTS = {"OPERATOR_CALL", "Method::execute", "Method::init", "Program::load_method"}


@dataclass
class RuntimeOpRow:
    index: int              # position among the runtime's kernel calls
    op: str                 # e.g. "quantviz::conv2d"
    node: str               # the fuse stage's node it was matched with ("" when none)
    status: str             # "compared", "inside a delegate: ...", "no ahead-of-time value: ..."
    elements: int = 0
    max_abs_diff: float = float("nan")   # in the op's own units: integer steps for int8/uint8 outputs
    sqnr_db: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _op_of_event(name: str) -> str:
    name = name.removeprefix("native_call_")
    name = name.split("::")[-1] if "::" in name else name
    return name.removesuffix(".out").split(".")[0]


def _op_of_node(n: fx.Node) -> str:
    text = str(n.target)
    for prefix in ("quantized_decomposed.", "quantviz.", "aten."):
        if prefix in text:
            return text.split(prefix)[-1].split(".")[0]
    return text.rsplit(".", 1)[-1]


def runtime_events(buffer: bytes, batch: tuple, debug_buffer_size: int) -> list[tuple[str, Any, bool]]:
    """Run the program once with an ETDump and a debug buffer; (event name, first output, delegated?) per kernel
    call, in execution order."""
    from executorch.devtools import Inspector
    from executorch.extension.pybindings.portable_lib import _load_for_executorch_from_buffer

    import executorch.kernels.quantized  # noqa: F401

    module = _load_for_executorch_from_buffer(buffer, enable_etdump=True, debug_buffer_size=debug_buffer_size)
    module.forward(tuple(batch))
    with tempfile.TemporaryDirectory() as d:
        etdump, debug = os.path.join(d, "run.etdp"), os.path.join(d, "debug.bin")
        module.write_etdump_result_to_file(etdump, debug)
        inspector = Inspector(etdump_path=etdump, debug_buffer_path=debug)
    events = []
    for block in inspector.event_blocks:
        if block.name != "Execute":
            continue
        for e in block.events:
            if e.name in _SKIP_EVENTS:
                continue
            data = e.debug_data[0] if e.debug_data else None
            events.append((e.name, data, bool(e.is_delegated_op) or e.name == "DELEGATE_CALL"))
    return events


def runtime_intermediates(pipe, batch: tuple) -> list[RuntimeOpRow]:
    """One row per kernel call of the runtime on ``batch``."""
    from quantviz.numerics.capture import capture_values
    from quantviz.numerics.kernel_instances import has_delegates

    emit, fuse = pipe.results["emit"], pipe.results["fuse"]
    if pipe.config.uses_quantviz_kernels:
        from quantviz_kernels import load

        load()
    final = emit.artifact.exported_program().graph
    size = sum(int(v.numel() * v.element_size()) for n in final.nodes
               for v in [n.meta.get("val")] if isinstance(v, torch.Tensor))
    events = runtime_events(emit.artifact.buffer, batch, 2 * size + (1 << 20))
    ep = fuse.artifact.exported_program()
    delegated = has_delegates(ep.graph_module)
    gm = ep.module()
    aot = {} if delegated else capture_values(gm, tuple(batch))
    by_op: dict[str, list[fx.Node]] = {}
    for n in gm.graph.nodes:
        if n.op == "call_function" and "getitem" not in str(n.target):
            by_op.setdefault(_op_of_node(n), []).append(n)
    seen: dict[str, int] = {}
    rows = []
    for i, (name, data, in_delegate) in enumerate(events):
        op = _op_of_event(name)
        if in_delegate:
            rows.append(RuntimeOpRow(i, name, "", "inside a delegate: the backend reports the op but not its "
                                                 "output"))
            continue
        k = seen.get(op, 0)
        seen[op] = k + 1
        nodes = by_op.get(op, [])
        node = nodes[k] if k < len(nodes) else None
        if node is None:
            rows.append(RuntimeOpRow(i, name, "", "no matching node in the fuse stage's graph"))
            continue
        row = RuntimeOpRow(i, name, node.name, "compared")
        value = aot.get(node.name)
        if delegated:
            row.status = "no ahead-of-time value: the program calls delegates, so it only runs in the runtime"
        elif not isinstance(value, torch.Tensor) or not isinstance(data, torch.Tensor) \
                or tuple(value.shape) != tuple(data.shape):
            row.status = "no ahead-of-time value of the same shape"
        else:
            row.elements = data.numel()
            diff = (data.double() - value.double()).abs()
            row.max_abs_diff = float(diff.max()) if diff.numel() else 0.0
            row.sqnr_db = sqnr_db(value, data)
        rows.append(row)
    return rows
