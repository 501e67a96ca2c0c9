"""Place a program's timed events on quantviz's own nodes and patterns.

- A kernel call outside delegates: the ETRecord's debug-handle map gives its instruction's debug handles; the node
  of the lowered stage's graph with that handle and the kernel's operator is the one it computed (the k-th
  unplaced one when several share the handle); without a map, the k-th call of an operator is its k-th node.
- A ``DELEGATE_CALL``: the k-th call is the graph's k-th delegate node; the operator events logged before it are
  inside it.
- An operator a delegate reports: through the ETRecord's delegate map when the backend fills it (its identifier
  -> debug handles). XNNPACK's is empty (``xnnpack_preprocess`` returns ``debug_handle_map={}``), and it names its
  events by XNNPACK operator (``Convolution (NHWC, QS8) IGEMM #3``): those are placed by kind and order on the
  delegate's subgraph (the k-th GEMM-like event is the k-th convolution/linear/matmul node; XNNPACK runs its nodes in
  the order it was given them). ``Convert`` events are the q/dq the delegate performs; transposes, reshapes and pads
  no node asked for are the layout changes it inserts. Both are kept as their own places, not hidden.

Example::

    placed = place_events(profile, lowered_graph, handle_map)
    [(p.event.name, p.node, p.pattern) for p in placed][:1]
    # [('Convolution (NHWC, QS8) IGEMM #1', 'executorch_call_delegate/aten_convolution_default', 'p0')]
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from quantviz.graph.model import GraphView, NodeView, PatternInstance
from quantviz.graph.patterns import node_op
from quantviz.timing.profile import Profile, TimedEvent

PlaceKind = Literal["pattern", "op", "delegate_qdq", "delegate_layout", "delegate_other", "portable_qdq"]
# pattern: an event on a member of a quantized pattern; op: on a node outside any pattern; delegate_qdq: XNNPACK's
# Convert (q/dq done inside the delegate); delegate_layout: a transpose/reshape/pad the delegate inserted;
# delegate_other: a delegate event no node could be found for; portable_qdq: a q/dq kernel outside any pattern

# XNNPACK operator (the event name up to " (" or " #") -> the graph ops it may be
_GEMM = {"convolution", "linear", "addmm", "mm", "bmm", "matmul", "conv2d", "conv1d"}
_XNN_CLASSES: dict[str, set[str]] = {
    "Convolution": _GEMM, "Deconvolution": _GEMM, "Fully Connected": _GEMM, "Batch Matrix Multiply": _GEMM,
    "Add": {"add"}, "Multiply": {"mul"}, "Subtract": {"sub"}, "Divide": {"div"},
    "Mean": {"mean", "avg_pool2d", "adaptive_avg_pool2d"}, "Global Average Pooling": {"mean", "adaptive_avg_pool2d"},
    "Average Pooling": {"avg_pool2d"}, "Max Pooling": {"max_pool2d", "max_pool2d_with_indices"},
    "Argmax Pooling": {"max_pool2d_with_indices"}, "Softmax": {"_softmax", "softmax"},
    "Clamp": {"hardtanh", "clamp", "relu"}, "HardSwish": {"hardswish"}, "Sigmoid": {"sigmoid"},
    "Tanh": {"tanh"}, "GELU": {"gelu"}, "Leaky ReLU": {"leaky_relu"}, "ELU": {"elu"}, "Square Root": {"sqrt"},
    "Reciprocal Square Root": {"rsqrt"}, "Square": {"pow"}, "Negate": {"neg"}, "Abs": {"abs"},
    "Exp": {"exp"}, "Log": {"log"}, "Maximum": {"maximum"}, "Minimum": {"minimum"},
    "Concatenate": {"cat"}, "Resize Bilinear": {"upsample_bilinear2d"},
    "Transpose": {"permute_copy", "permute", "transpose"}, "Static Reshape": {"view_copy", "view", "reshape",
                                                                             "squeeze_copy", "unsqueeze_copy"},
    "Copy": {"clone", "_to_copy", "view_copy"}, "Constant Pad": {"constant_pad_nd"}, "Slice": {"slice_copy"},
    "Even Split": {"split_with_sizes_copy", "split_copy"},
}
_LAYOUT = {"Transpose", "Static Reshape", "Copy", "Constant Pad", "Slice", "Even Split", "Concatenate"}
_QDQ_OPS = {"quantize_per_tensor", "dequantize_per_tensor", "quantize_per_channel", "dequantize_per_channel",
            "quantize_affine", "dequantize_affine", "choose_qparams"}


def xnn_operator(name: str) -> str:
    """``Convolution (NHWC, QS8) IGEMM #3`` -> ``Convolution``."""
    return re.split(r" \(| #", name, maxsplit=1)[0].strip()


def kernel_op(name: str) -> str:
    """``native_call_quantize_per_tensor.out`` -> ``quantize_per_tensor``; ``quantviz::conv2d.out`` -> ``conv2d``."""
    name = name.removeprefix("native_call_")
    name = name.split("::")[-1]
    return name.removesuffix(".out").split(".")[0]


@dataclass
class Placed:
    """Where one event's time goes."""

    event: TimedEvent
    kind: PlaceKind
    node: str | None = None         # the node id (in the lowered stage's graph; delegated: "<subgraph>/<name>")
    pattern: str | None = None      # the id of the pattern that node belongs to
    delegate: int | None = None     # which delegate call (0, 1, ...) for an event inside one


@dataclass
class DelegateCall:
    """One delegate call of the program and the events logged inside it."""

    index: int
    node: str | None               # the delegate node of the lowered graph
    backend: str                   # e.g. "XnnpackBackend"
    call: TimedEvent               # the DELEGATE_CALL event
    inside: list[Placed]


@dataclass
class Placement:
    """Every event of a profile, placed."""

    kernels: list[Placed]          # kernel calls outside delegates, in order
    delegates: list[DelegateCall]  # in order of their calls
    patterns: dict[str, PatternInstance]  # pattern id -> pattern (top-level graph and delegate subgraphs)
    nodes: dict[str, NodeView]     # node id -> node, likewise

    def all(self) -> list[Placed]:
        return [*self.kernels, *(p for d in self.delegates for p in d.inside)]


def _pattern_index(graph: GraphView) -> tuple[dict[str, PatternInstance], dict[str, str], dict[str, NodeView]]:
    patterns: dict[str, PatternInstance] = {}
    member_of: dict[str, str] = {}
    nodes: dict[str, NodeView] = {n.id: n for n in graph.nodes}
    for p in graph.patterns:
        patterns[p.id] = p
        for m in p.members:
            member_of.setdefault(m, p.id)
    for key, sub in graph.subgraphs.items():
        nodes.update({n.id: n for n in sub.nodes})
        for p in sub.patterns:
            pid = p.id if p.id.startswith(key) else f"{key}/{p.id}"
            patterns[pid] = p
            for m in p.members:
                member_of.setdefault(m, pid)
    return patterns, member_of, nodes


def place_events(profile: Profile, graph: GraphView, handle_map: dict[int, list[int]] | None = None,
                 delegate_map: dict[int, dict] | None = None) -> Placement:
    """Place every event of ``profile`` on ``graph`` (the lowered stage's: the program before ``to_executorch``).

    ``handle_map``: instruction id -> debug handles (``ExecutorchProgramManager.debug_handle_map["forward"]`` or
    the ETRecord's); ``delegate_map``: instruction id -> ``{"name", "delegate_map": {identifier: handles}}``.
    """
    patterns, member_of, nodes = _pattern_index(graph)
    top = [n for n in graph.nodes if n.op == "call_function"]
    delegate_nodes = [n for n in graph.nodes if n.kind == "delegate"]
    kernels = _place_kernels(profile.of_kind("kernel"), top, member_of, handle_map or {})
    delegates: list[DelegateCall] = []
    pending: list[TimedEvent] = []
    for e in profile.events:
        if e.kind == "delegated":
            pending.append(e)
        elif e.kind == "delegate_call":
            k = len(delegates)
            dnode = delegate_nodes[k] if k < len(delegate_nodes) else None
            sub = graph.subgraphs.get(dnode.subgraph or "") if dnode is not None else None
            meta = (delegate_map or {}).get(e.instruction_id or -1) or {}
            backend = meta.get("name") or (dnode.backend if dnode is not None and dnode.backend else "")
            inside = _place_delegated(pending, sub, member_of, meta.get("delegate_map") or {}, k)
            delegates.append(DelegateCall(k, dnode.id if dnode else None, backend, e, inside))
            pending = []
    return Placement(kernels, delegates, patterns, nodes)


def _place_kernels(events: list[TimedEvent], top: list[NodeView], member_of: dict[str, str],
                   handle_map: dict[int, list[int]]) -> list[Placed]:
    by_op: dict[str, list[NodeView]] = {}
    for n in top:
        if n.kind != "delegate" and "getitem" not in n.target:
            by_op.setdefault(node_op(n), []).append(n)
    taken: set[str] = set()
    seen: dict[str, int] = {}
    out = []
    for e in events:
        op = kernel_op(e.name)
        candidates = by_op.get(op, [])
        node = None
        handles = handle_map.get(e.instruction_id) if e.instruction_id is not None else None
        if handles is not None:
            handles = {handles} if isinstance(handles, int) else set(handles)
            node = next((n for n in candidates if n.debug_handle in handles and n.id not in taken), None)
        if node is None:  # no map, or no node with the handle: the k-th call of the op is its k-th node
            k = seen.get(op, 0)
            node = candidates[k] if k < len(candidates) and candidates[k].id not in taken else \
                next((n for n in candidates if n.id not in taken), None)
        seen[op] = seen.get(op, 0) + 1
        if node is not None:
            taken.add(node.id)
        pid = member_of.get(node.id) if node is not None else None
        kind: PlaceKind = "pattern" if pid else "portable_qdq" if op in _QDQ_OPS else "op"
        out.append(Placed(e, kind, node.id if node else None, pid))
    return out


def _place_delegated(events: list[TimedEvent], sub: GraphView | None, member_of: dict[str, str],
                     id_map: dict, index: int) -> list[Placed]:
    ops = [n for n in (sub.nodes if sub is not None else []) if n.op == "call_function"]
    by_handle: dict[int, list[NodeView]] = {}
    for n in ops:
        if n.debug_handle is not None:
            by_handle.setdefault(n.debug_handle, []).append(n)
    queues: dict[str, list[NodeView]] = {}
    for cls, names in _XNN_CLASSES.items():
        queues[cls] = [n for n in ops if node_op(n) in names]
    gemm = [n for n in ops if node_op(n) in _GEMM]
    cursor: dict[str, int] = {}
    taken: set[str] = set()
    out = []
    for e in events:
        node = None
        handles = id_map.get(e.delegate_id) if e.delegate_id is not None else None
        if handles is not None:  # the backend's own map
            hs = [handles] if isinstance(handles, int) else list(handles)
            node = next((n for h in hs for n in by_handle.get(h, []) if n.id not in taken
                         and node_op(n) not in _QDQ_OPS), None)
        cls = xnn_operator(e.name)
        if cls == "Convert" and node is None:
            out.append(Placed(e, "delegate_qdq", delegate=index))
            continue
        if node is None:
            queue = gemm if _XNN_CLASSES.get(cls) is _GEMM else queues.get(cls, [])
            key = "gemm" if queue is gemm else cls
            k = cursor.get(key, 0)
            while k < len(queue) and queue[k].id in taken:
                k += 1
            if k < len(queue):
                node = queue[k]
                cursor[key] = k + 1
        if node is None:
            kind: PlaceKind = "delegate_layout" if cls in _LAYOUT else "delegate_other"
            out.append(Placed(e, kind, delegate=index))
            continue
        taken.add(node.id)
        pid = member_of.get(node.id)
        out.append(Placed(e, "pattern" if pid else "op", node.id, pid, index))
    return out
