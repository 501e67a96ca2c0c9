"""The one graph data model every face of quantviz reads: plain, JSON-serialisable data.

A :class:`GraphView` is a snapshot of one stage's graph. Build one with
:func:`quantviz.graph.snapshot`::

    view = snapshot(exported_program, stage="capture")
    view.kind_counts()   # {"quantize": 6, "dequantize": 8, ...}
    json.dumps(view.to_dict())
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

# Node kinds, in legend order.
KINDS: tuple[str, ...] = (
    "input", "parameter", "output", "quantize", "dequantize", "choose_qparams", "observer",
    "delegate", "quantized_op", "float_op", "other",
)


@dataclass
class QParams:
    """Decoded quantization parameters of a quantize/dequantize/choose_qparams node.

    ``scale``/``zero_point`` are numbers for per-tensor, lists for per-channel (``axis`` set),
    and None where they are computed at run time (dynamic quantization). torchao's affine ops give a
    ``block_size`` (the elements one scale covers); groupwise scales (``per_group``) are summarised by their shape
    and range instead of listed: one LSB is one group's scale, so it differs from group to group.
    """

    scheme: str  # "per_tensor", "per_channel", "per_group", "per_token", "dynamic"
    dtype: str | None = None
    scale: float | list[float] | None = None
    zero_point: int | list[int] | None = None
    quant_min: int | None = None
    quant_max: int | None = None
    axis: int | None = None
    channels: int | None = None
    block_size: list[int] | None = None  # torchao affine ops: the block one scale covers, e.g. [1, 32]
    scale_shape: list[int] | None = None  # the scale tensor's shape, e.g. [128, 2] (128 rows x 2 groups)
    scale_min: float | None = None  # the smallest and largest scale (per-group and large per-channel scales)
    scale_max: float | None = None
    group_size: int | None = None  # per_group: input channels per group

    def label(self) -> str:
        """Short text for a graph label, e.g. ``int8 s=0.0123 zp=-3``, ``int4 per-group 32 (128×2 scales)``."""
        dtype = (self.dtype or "").replace("torch.", "")
        if self.scheme == "per_group":
            shape = "×".join(str(d) for d in self.scale_shape or [])
            return f"{dtype} per-group {self.group_size} ({shape} scales)"
        if self.scheme == "per_channel":
            return f"{dtype} per-channel axis={self.axis} ({self.channels} ch)"
        if self.scheme == "dynamic" and self.block_size:
            return f"{dtype} dynamic, block {'×'.join(str(d) for d in self.block_size)}"
        if isinstance(self.scale, float):
            return f"{dtype} s={self.scale:.4g} zp={self.zero_point}"
        return f"{dtype} {self.scheme}"


@dataclass
class NodeView:
    """One node of a stage's graph."""

    id: str
    name: str
    op: str  # fx opcode: placeholder, get_attr, call_function, call_module, call_method, output
    target: str  # canonical target name, e.g. "aten.convolution.default"
    kind: str  # one of KINDS
    inputs: list[str] = field(default_factory=list)  # ids of input nodes, in argument order
    args: list[str] = field(default_factory=list)  # short text of each argument
    shape: list[int | str] | None = None  # a symbolic (dynamic) size as its name, e.g. [1, "s27"]
    dtype: str | None = None
    qparams: QParams | None = None
    module_path: str | None = None  # e.g. "features.3.block.1"
    module_type: str | None = None
    source: str | None = None  # "file.py:42" of the user's code
    from_node: list[str] = field(default_factory=list)  # provenance: names of the nodes it came from
    lineage: list[str] = field(default_factory=list)  # the whole from_node chain back to the first stage
    debug_handle: int | None = None
    subgraph: str | None = None  # for delegate calls: key of the lowered module's graph in GraphView.subgraphs
    backend: str | None = None  # for delegate calls: backend id
    # for an ExportedProgram's buffer placeholder that the graph writes (a KV cache): the buffer's name
    mutable_buffer: str | None = None
    # for a user input of an ExportedProgram: where it sits in forward's arguments, e.g. "args[0]",
    # "kwargs['cache']['k']" (the runtime takes the inputs flat, in this order)
    input_path: str | None = None
    # the dynamic (symbolic) sizes of its shape with their ranges, e.g. ["s0 ∈ [2, 64]"]
    dynamic_dims: list[str] = field(default_factory=list)


@dataclass
class PatternInstance:
    """A reference quantized pattern: dequantized inputs -> float op(s) -> quantize.

    ``ops`` lists the float op names in order (e.g. ``["add", "relu"]``); ``output_q`` is None
    where the result stays float (dynamic quantization, or an unquantized consumer).
    """

    id: str
    op: str
    ops: list[str]
    anchor: str
    input_dqs: list[str]
    output_q: str | None
    members: list[str]
    dtype: str | None = None
    module_path: str | None = None
    source: str | None = None

    def label(self) -> str:
        tail = " → q" if self.output_q else ""
        return "dq → " + " → ".join(self.ops) + tail


@dataclass
class GraphView:
    """A snapshot of one graph: nodes in topological order, patterns, and delegate subgraphs."""

    stage: str
    nodes: list[NodeView]
    patterns: list[PatternInstance] = field(default_factory=list)
    subgraphs: dict[str, "GraphView"] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index: dict[str, NodeView] = {n.id: n for n in self.nodes}

    def node(self, node_id: str) -> NodeView:
        return self._index[node_id]

    def kind_counts(self) -> dict[str, int]:
        counts = Counter(n.kind for n in self.nodes)
        return {k: counts[k] for k in KINDS if counts[k]}

    def users(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {n.id: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                if i in out:
                    out[i].append(n.id)
        return out

    def delegated_node_count(self) -> int:
        """Operator nodes inside all delegate subgraphs."""
        return sum(
            sum(1 for n in g.nodes if n.kind not in ("input", "parameter", "output"))
            for g in self.subgraphs.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "meta": self.meta,
            "counts": self.kind_counts(),
            "nodes": [_drop_none(asdict(n)) for n in self.nodes],
            "patterns": [asdict(p) for p in self.patterns],
            "subgraphs": {k: g.to_dict() for k, g in self.subgraphs.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GraphView":
        nodes = []
        for raw in d["nodes"]:
            raw = dict(raw)
            if raw.get("qparams") is not None:
                raw["qparams"] = QParams(**raw["qparams"])
            nodes.append(NodeView(**raw))
        return cls(
            stage=d["stage"], nodes=nodes, patterns=[PatternInstance(**p) for p in d.get("patterns", [])],
            subgraphs={k: cls.from_dict(g) for k, g in d.get("subgraphs", {}).items()}, meta=d.get("meta", {}))


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != []}
