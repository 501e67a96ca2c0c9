"""Per-op outputs inside the ExecuTorch runtime, against the same ops run ahead of time.

The runtime writes every operator's output to a debug buffer when the program is loaded with an ETDump and a
debug buffer (``enable_etdump=True, debug_buffer_size=...``); ``executorch.devtools.Inspector`` reads them back
as events in execution order. Each kernel event is matched with the fuse stage's graph by operator and order of
execution (the k-th ``quantviz::conv2d.out`` call is the k-th ``quantviz.conv2d`` node), and compared with that
node's value when the fused program runs ahead of time in PyTorch. Delegate calls are one event each, logged with
all their arguments (inputs first, outputs last); the ops inside them are reported by XNNPACK (e.g.
"Convolution (NHWC, QS8) IGEMM #1") but without their outputs, and the table says so. With one op per delegate
(``--delegate-granularity op``) each delegate call's outputs are that op's: ``blame.py`` reads them.

Example::

    rows = runtime_intermediates(pipe, batch)
    rows[0]   # RuntimeOpRow(index=0, op='quantize_per_tensor', node='quantize_per_tensor_default', ...)
    rows[0].status is OpStatus.COMPARED, rows[0].status.text   # (True, 'compared')
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch
from torch import fx

from quantviz.numerics.capture import capture_values
from quantviz.numerics.kernel_instances import has_delegates
from quantviz.measure.metrics import sqnr_db
from quantviz.pipeline_view import PipelineView
from quantviz.model_spec import Batch, flat_inputs

_SKIP_EVENTS = {"OPERATOR_CALL", "Method::execute", "Method::init", "Program::load_method"}


class OpStatus(Enum):
    """Whether one runtime kernel call was compared with the fused program, or why not; ``text`` is what
    numerics.json and runtime_intermediates.csv say."""

    COMPARED = "compared"
    INSIDE_DELEGATE = "inside_delegate"        # the backend reports the op, not its output
    NO_NODE = "no_node"                        # no node of the fuse stage's graph matched (operator, order)
    DELEGATED_PROGRAM = "delegated_program"    # the fused program calls delegates: no ahead-of-time run
    SHAPE_DIFFERS = "shape_differs"            # the ahead-of-time value is missing or of another shape

    @property
    def text(self) -> str:
        """The table's wording: ``OpStatus.INSIDE_DELEGATE.text -> "inside a delegate: ..."``."""
        return _STATUS_TEXT[self]


_STATUS_TEXT = {
    OpStatus.COMPARED: "compared",
    OpStatus.INSIDE_DELEGATE: "inside a delegate: the backend reports the op but not its output",
    OpStatus.NO_NODE: "no matching node in the fuse stage's graph",
    OpStatus.DELEGATED_PROGRAM: "no ahead-of-time value: the program calls delegates, so it only runs in the runtime",
    OpStatus.SHAPE_DIFFERS: "no ahead-of-time value of the same shape",
}


@dataclass
class RuntimeOpRow:
    index: int              # position among the runtime's kernel calls
    op: str                 # e.g. "quantviz::conv2d"
    node: str               # the fuse stage's node it was matched with ("" when none)
    status: OpStatus        # compared, or why not
    elements: int = 0
    max_abs_diff: float = float("nan")   # in the op's own units: integer steps for int8/uint8 outputs
    sqnr_db: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "op": self.op, "node": self.node, "status": self.status.text,
                "elements": self.elements, "max_abs_diff": self.max_abs_diff, "sqnr_db": self.sqnr_db}


@dataclass
class RuntimeIntermediates:
    """The runtime-intermediates table and whether it could be made (``NumericsReport.runtime_intermediates``)."""

    available: bool = False       # the runtime ran with an ETDump and its events were read
    reason: str = ""              # what the table covers when available, else why it is missing
    rows: list[RuntimeOpRow] = field(default_factory=list)  # one per kernel or delegate call (available only)

    def to_dict(self) -> dict[str, Any]:
        """``{"available", "reason"}``, and ``"rows"`` when available (the numerics.json format)."""
        rows = {"rows": [r.to_dict() for r in self.rows]} if self.available else {}
        return {"available": self.available, "reason": self.reason, **rows}

    def compared(self) -> list[RuntimeOpRow]:
        return [r for r in self.rows if r.status is OpStatus.COMPARED]

    def inside_delegates(self) -> list[RuntimeOpRow]:
        return [r for r in self.rows if r.status is OpStatus.INSIDE_DELEGATE]


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


@dataclass
class RuntimeEvent:
    """One kernel or delegate call of a runtime run, in execution order."""

    name: str                     # e.g. "native_call_convolution.out", "DELEGATE_CALL", "Convolution (NHWC, QS8) #1"
    data: list[Any]               # what the runtime logged: a kernel's output; every argument of a delegate call
    delegated: bool               # inside a delegate, or the delegate call itself
    delegate_call: bool = False   # the DELEGATE_CALL event (its arguments: inputs first, outputs last)


def delegate_events(calls: list) -> list[RuntimeEvent]:
    """The events of a run whose delegates a backend's reference model computed (``DelegateCall``s of
    ``quantviz.backends.delegate_runs``), as the runtime's ETDump would log the delegate calls: inputs first,
    outputs last."""
    return [RuntimeEvent("DELEGATE_CALL", [*c.inputs, *c.outputs], True, True) for c in calls]


def runtime_events(buffer: bytes, batch: tuple, debug_buffer_size: int) -> list[RuntimeEvent]:
    """Run the program once with an ETDump and a debug buffer; one event per kernel call, delegate call and op the
    delegate reports, in execution order.

    Example::

        events = runtime_events(program.buffer, (x,), 1 << 24)
        [e.name for e in events if e.delegate_call]   # ['DELEGATE_CALL', ...]
    """
    from executorch.devtools import Inspector
    from executorch.extension.pybindings.portable_lib import _load_for_executorch_from_buffer

    import executorch.kernels.quantized  # noqa: F401

    module = _load_for_executorch_from_buffer(buffer, enable_etdump=True, debug_buffer_size=debug_buffer_size)
    module.forward(flat_inputs(batch))
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
            call = e.name == "DELEGATE_CALL"
            events.append(RuntimeEvent(e.name, list(e.debug_data or []), bool(e.is_delegated_op) or call, call))
    return events


def debug_buffer_size(program: Any) -> int:
    """Bytes enough for every value of ``program`` (an ExecuTorch program manager) logged twice (a delegate call
    logs its inputs and its outputs), plus 1 MiB."""
    size = sum(int(v.numel() * v.element_size()) for n in program.exported_program().graph.nodes
               for v in [n.meta.get("val")] if isinstance(v, torch.Tensor))
    return 3 * size + (1 << 20)


def kernel_nodes(events: list[RuntimeEvent], gm: fx.GraphModule) -> dict[int, fx.Node]:
    """Event index -> the node of ``gm`` (the fuse stage's program) each kernel call outside delegates computes,
    matched by operator and order (the k-th ``quantize_per_tensor.out`` call is the k-th quantize node)."""
    by_op: dict[str, list[fx.Node]] = {}
    for n in gm.graph.nodes:
        if n.op == "call_function" and "getitem" not in str(n.target) and "call_delegate" not in str(n.target):
            by_op.setdefault(_op_of_node(n), []).append(n)
    seen: dict[str, int] = {}
    out = {}
    for i, e in enumerate(events):
        if e.delegated:
            continue
        op = _op_of_event(e.name)
        k = seen.get(op, 0)
        seen[op] = k + 1
        nodes = by_op.get(op, [])
        if k < len(nodes):
            out[i] = nodes[k]
    return out


def runtime_intermediates(pipe: PipelineView, batch: tuple,
                          events: list[RuntimeEvent] | None = None) -> list[RuntimeOpRow]:
    """One row per kernel call of the runtime on ``batch`` (``events``: that run's, when already read)."""

    emit, fuse = pipe.results[pipe.role("program")], pipe.results[pipe.role("lowered")]
    if pipe.flow.uses_quantviz_kernels(pipe.config):
        from quantviz_kernels import load

        load()
    if events is None:
        events = runtime_events(emit.artifact.buffer, batch, debug_buffer_size(emit.artifact))
    ep = fuse.artifact.exported_program()
    delegated = has_delegates(ep.graph_module)
    gm = ep.module()
    aot = {} if delegated else capture_values(gm, batch if isinstance(batch, Batch) else tuple(batch))
    matched = kernel_nodes(events, gm)
    rows = []
    for i, event in enumerate(events):
        name = event.name
        data = event.data[0] if event.data else None
        if event.delegated:
            rows.append(RuntimeOpRow(i, name, "", OpStatus.INSIDE_DELEGATE))
            continue
        node = matched.get(i)
        if node is None:
            rows.append(RuntimeOpRow(i, name, "", OpStatus.NO_NODE))
            continue
        row = RuntimeOpRow(i, name, node.name, OpStatus.COMPARED)
        value = aot.get(node.name)
        if delegated:
            row.status = OpStatus.DELEGATED_PROGRAM
        elif not isinstance(value, torch.Tensor) or not isinstance(data, torch.Tensor) \
                or tuple(value.shape) != tuple(data.shape):
            row.status = OpStatus.SHAPE_DIFFERS
        else:
            row.elements = data.numel()
            diff = (data.double() - value.double()).abs()
            row.max_abs_diff = float(diff.max()) if diff.numel() else 0.0
            row.sqnr_db = sqnr_db(value, data)
        rows.append(row)
    return rows
