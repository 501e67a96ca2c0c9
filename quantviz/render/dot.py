"""Turn a graph model plus a view description into DOT text (the graphviz package writes it).

    dot = to_dot(pipe.results["convert"].graph, ViewSpec())
    svg = dot_to_svg(dot)   # needs the `dot` binary

SVG ids: a node or module box is ``qv_<box id>`` (``qv_module/<path>`` for a collapsed module), an expanded
module's cluster ``qv_open/<path>``, so a page can find the element of a node, a box or an open module. Font
sizes are fixed points: a page shows the drawing at its natural size and pans and zooms it, never shrinks it
to a width.
"""
from __future__ import annotations

import re

from dataclasses import dataclass, field

import graphviz

from quantviz.graph.model import GraphView, NodeView, PatternInstance
from quantviz.render.palette import (
    ADDED, DELEGATE_CLUSTER, GROUP_STYLE, HIGHLIGHT, KIND_STYLES, MODULE_CLUSTER, PATTERN_CLUSTER, REMOVED,
    REMOVED_FILL, REMOVED_FONT, overlay_colour,
)
from quantviz.render.view import Item, ViewPlan, ViewSpec, plan_view

FONT = {"node": "10", "group": "11", "cluster": "11", "title": "14", "legend": "9"}  # points, never scaled


def svg_id(node_id: str) -> str:
    return "qv_" + node_id


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")


def _short_target(n: NodeView) -> str:
    if n.op == "call_module" and n.module_type:
        return n.module_type
    parts = n.target.split(".")
    if parts[0] in ("aten", "quantized_decomposed", "quantviz", "torchao", "higher_order") and len(parts) > 1:
        return ("" if parts[0] == "aten" else parts[0] + "::") + parts[1]
    return parts[-1]


def node_label(n: NodeView, note: str | None = None) -> str:
    lines = [n.name]
    if n.kind not in ("input", "output", "parameter", "quantize", "dequantize") and _short_target(n) != n.name:
        lines.append(_short_target(n))
    if n.qparams is not None:
        lines.append(n.qparams.label())
    elif n.shape is not None and n.kind in ("input", "output", "float_op", "quantized_op"):
        lines.append("×".join(map(str, n.shape)) if n.shape else "scalar")
    if n.kind == "input" and n.input_path and not re.fullmatch(r"args\[\d+\]", n.input_path):
        lines.append(n.input_path)  # a keyword or nested input: where it sits in forward's arguments
    if n.kind == "input" and n.dynamic_dims:
        lines.append(", ".join(n.dynamic_dims))
    if n.mutable_buffer:
        lines.append("mutable buffer (written in place)")
    if note:
        lines.append(note)
    return "\\n".join(_esc(line) for line in lines)


def node_tooltip(n: NodeView, note: str | None = None) -> str:
    rows = [f"{n.kind}: {n.target}"] + ([f"mutable buffer {n.mutable_buffer}: the program writes it in place "
                                         "(e.g. a KV cache)"] if n.mutable_buffer else [])
    if n.qparams is not None:
        rows.append(n.qparams.label())
    if n.shape is not None:
        rows.append(f"shape {n.shape} {n.dtype or ''}")
    if n.input_path:
        rows.append(f"input {n.input_path}")
    if n.dynamic_dims:
        rows.append("dynamic " + ", ".join(n.dynamic_dims))
    if n.module_path:
        rows.append(f"module {n.module_path}" + (f" ({n.module_type})" if n.module_type else ""))
    if n.source:
        rows.append(f"source {n.source}")
    if note:
        rows.append(note)
    return _esc(" | ".join(rows))


def group_label_lines(item: Item, overlay_label: str = "", digits: int = 1) -> list[str]:
    """The lines of a collapsed module's box: path (and class), node count, then its badges.

    >>> group_label_lines(item)   # ['blocks.3 · Block', '96 nodes', '8 q/dq patterns · 22 q/dq', '2 fused']
    """
    s = item.stats
    head = item.group + (f" · {s.module_type}" if s and s.module_type else "")
    lines = [head, f"{len(item.members)} nodes"]
    if s is None:
        return lines
    if s.patterns or s.quant_nodes:
        lines.append(f"{s.patterns} q/dq pattern{'s' if s.patterns != 1 else ''} · {s.quant_nodes} q/dq")
    badges = []
    if s.delegated_ops:
        badges.append(f"{s.delegated_share:.0%} delegated ({s.delegated_ops} ops)")
    if s.fused:
        badges.append(f"{s.fused} fused")
    if badges:
        lines.append(" · ".join(badges))
    if s.worst is not None:
        lines.append(f"worst {overlay_label or 'value'} {s.worst[1]:.{digits}f} ({s.worst[0]})")
    diff = [t for t in (f"+{s.added} added" if s.added else "", f"−{s.removed} removed" if s.removed else "") if t]
    if diff:
        lines.append(" · ".join(diff))
    return lines


@dataclass
class _Drawing:
    """What every drawing step reads: the graph, the view and the plan, and which nodes are placed."""

    graph: GraphView
    spec: ViewSpec
    plan: ViewPlan
    notes: dict[str, str]  # node id -> note
    overlay: dict[str, float]  # node id -> overlay value
    low: float  # overlay range
    high: float
    containers: dict[str | None, graphviz.Digraph] = field(default_factory=dict)  # open module -> its cluster
    placed: set[str] = field(default_factory=set)  # node ids drawn already

    def container(self, item_or_cluster: Item | str | None) -> graphviz.Digraph:
        key = item_or_cluster.cluster if isinstance(item_or_cluster, Item) else item_or_cluster
        return self.containers.get(key, self.containers[None])


def _start(graph: GraphView, spec: ViewSpec, plan: ViewPlan) -> _Drawing:
    """The drawing's context: notes, overlay range, the root graph and one cluster per open module."""
    overlay = dict(spec.overlay)
    lo, hi = (min(overlay.values()), max(overlay.values())) if overlay else (0.0, 1.0)
    d = _Drawing(graph, spec, plan, dict(spec.notes), overlay, lo, hi)
    d.containers[None] = _root_graph(graph, plan)
    for path in plan.clusters:
        c = graphviz.Digraph(name=f"cluster_open_{path}")
        c.attr(label=_esc(f"▾ {path}"), id=svg_id(f"open/{path}"), tooltip=_esc(f"{path}: click the title to "
                                                                                 "collapse"), **MODULE_CLUSTER)
        d.containers[path] = c
    return d


def _root_graph(graph: GraphView, plan: ViewPlan) -> graphviz.Digraph:
    dot = graphviz.Digraph(name=graph.stage or "graph")
    title = f"{graph.stage}: {len(graph.nodes)} nodes"
    if plan.depth:
        title += f", {plan.visible_count} boxes (module depth {plan.depth})"
    dot.attr(rankdir="TB", fontname="Helvetica", fontsize=FONT["title"], nodesep="0.25", ranksep="0.35",
             label=_esc(title), labelloc="t")
    dot.attr("node", fontname="Helvetica", fontsize=FONT["node"], margin="0.08,0.03", height="0.3")
    dot.attr("edge", color="#64748b", arrowsize="0.6")
    return dot


def _colour(d: _Drawing, value: float) -> str:
    """The overlay fill: red at the worst end (low SQNR, or with ``overlay_high_is_bad`` the most ms)."""
    if d.spec.overlay_high_is_bad:
        value = d.high + d.low - value
    return overlay_colour(value, d.low, d.high)


def _node_attrs(d: _Drawing, n: NodeView) -> dict[str, str]:
    """Style by kind, then overlay fill, highlight and diff marks."""
    style = KIND_STYLES.get(n.kind, KIND_STYLES["other"])
    attrs = {"shape": style.shape, "style": style.style, "fillcolor": style.fill, "fontcolor": style.font,
             "id": svg_id(n.id), "tooltip": node_tooltip(n, d.notes.get(n.id)), "class": f"qv-node qv-{n.kind}"}
    if n.id in d.overlay:
        attrs.update(fillcolor=_colour(d, d.overlay[n.id]), fontcolor="#1d1d1f")
    if n.id in d.plan.highlighted:
        attrs.update(HIGHLIGHT)
    if n.id in d.spec.added:
        attrs.update(color=ADDED, penwidth="2.5", **{"class": attrs["class"] + " qv-added"})
    if n.id in d.spec.removed:
        attrs.update(color=REMOVED, penwidth="2", style=style.style.replace(",bold", "") + ",dashed",
                     fillcolor=REMOVED_FILL, fontcolor=REMOVED_FONT, **{"class": attrs["class"] + " qv-removed"})
    return attrs


def _add_node(d: _Drawing, target: graphviz.Digraph, n: NodeView) -> None:
    note = d.notes.get(n.id)
    if n.id in d.overlay:
        note = (note + " · " if note else "") + \
            f"{d.spec.overlay_label} {d.overlay[n.id]:.{d.spec.overlay_digits}f}".strip()
    target.node(n.id, label=node_label(n, note), **_node_attrs(d, n))
    d.placed.add(n.id)


def _pattern_clusters(d: _Drawing) -> None:
    """One labelled cluster per reference quantized pattern whose nodes are drawn as themselves together."""
    if not d.spec.show_patterns:
        return
    single = {i.id: i for i in d.plan.items if i.group is None}
    for p in d.graph.patterns:
        members = [m for m in p.members if m in single and m not in d.placed]
        if len(members) < 2 or len({single[m].cluster for m in members}) != 1:
            continue
        with d.container(single[members[0]]).subgraph(name=f"cluster_{p.id}") as c:
            c.attr(label=_esc(p.label()), tooltip=_esc(_pattern_tooltip(p)), id=f"qv_pattern_{p.id}",
                   **PATTERN_CLUSTER)
            for m in members:
                _add_node(d, c, d.graph.node(m))


def _pattern_tooltip(p: PatternInstance) -> str:
    return f"pattern {p.id}: {p.label()} ({p.dtype or ''})"


def _delegate_clusters(d: _Drawing) -> None:
    """Each delegate call in a cluster titled with the backend and its op count (its ops drawn when asked)."""
    for item in d.plan.items:
        n = d.graph.node(item.id) if item.group is None else None
        if n is None or n.kind != "delegate" or n.id in d.placed:
            continue
        sub = d.graph.subgraphs.get(n.subgraph or "")
        inner = [s for s in sub.nodes if s.kind not in ("input", "parameter", "output")] if sub else []
        with d.container(item).subgraph(name=f"cluster_delegate_{n.id}") as c:
            c.attr(label=_esc(f"{n.backend or 'delegate'} · {len(inner)} ops"), id=f"qv_delegate_{n.id}",
                   **DELEGATE_CLUSTER)
            _add_node(d, c, n)
            if sub is not None and n.id in d.spec.expand_delegates:
                _delegate_body(d, c, inner)


def _delegate_body(d: _Drawing, c: graphviz.Digraph, inner: list[NodeView]) -> None:
    inner_ids = {s.id for s in inner}
    for s in inner:
        _add_node(d, c, s)
    for s in inner:
        for i in s.inputs:
            if i in inner_ids:
                c.edge(i, s.id)


def _group_attrs(d: _Drawing, item: Item) -> dict[str, str]:
    s = item.stats
    attrs = {"shape": GROUP_STYLE.shape, "style": GROUP_STYLE.style, "fillcolor": GROUP_STYLE.fill,
             "fontsize": FONT["group"], "id": svg_id(item.id), "class": "qv-node qv-group",
             "tooltip": _esc(f"module {item.group}: {len(item.members)} nodes (click to expand)")}
    if s is not None and s.worst is not None:
        attrs["fillcolor"] = _colour(d, s.worst[1])
    if item.id in d.plan.highlighted:
        attrs.update(HIGHLIGHT)
    if s is not None and s.added:
        attrs.update(color=ADDED, penwidth="2.5")
    if s is not None and s.removed and s.removed == s.nodes:
        attrs.update(color=REMOVED, style="filled,dashed", fillcolor=REMOVED_FILL, fontcolor=REMOVED_FONT)
    elif s is not None and s.removed:
        attrs.update(color=REMOVED, style="filled,dashed", penwidth="2")
    return attrs


def _boxes(d: _Drawing) -> None:
    """Module boxes and the nodes not placed in a pattern or delegate cluster, each in its open module."""
    for item in d.plan.items:
        target = d.container(item)
        if item.group is not None:
            label = "\\n".join(_esc(line) for line in group_label_lines(item, d.spec.overlay_label,
                                                                          d.spec.overlay_digits))
            target.node(item.id, label=label, **_group_attrs(d, item))
        elif item.id not in d.placed:
            _add_node(d, target, d.graph.node(item.id))


def _nest_clusters(d: _Drawing) -> None:
    """Attach each open module's cluster to its parent's, innermost first (a subgraph is copied when added)."""
    for path in sorted(d.plan.clusters, key=lambda p: -p.count(".")):
        d.containers.get(d.plan.clusters[path], d.containers[None]).subgraph(d.containers[path])


def _edges(d: _Drawing) -> None:
    root = d.containers[None]
    for src, dst in d.plan.edges:
        root.edge(src, dst)


def to_dot(graph: GraphView, spec: ViewSpec = ViewSpec(), plan: ViewPlan | None = None) -> str:
    """DOT text for ``graph`` as ``spec`` describes it (the plan is computed when not given).

    >>> to_dot(graph, ViewSpec(expanded=("blocks.3",)))   # 'digraph convert { ... }'
    """
    plan = plan or plan_view(graph, spec)
    d = _start(graph, spec, plan)
    _pattern_clusters(d)
    _delegate_clusters(d)
    _boxes(d)
    _nest_clusters(d)
    _edges(d)
    _legend(d.containers[None], graph, plan, spec)
    return d.containers[None].source


def _legend(dot: graphviz.Digraph, graph: GraphView, plan: ViewPlan, spec: ViewSpec) -> None:
    kinds = {graph.node(m).kind for item in plan.items for m in item.members if item.group is None}
    with dot.subgraph(name="cluster_legend") as c:
        c.attr(label="legend", style="rounded", color="#cbd5e1", fontcolor="#475569", id="qv_legend")
        for kind, style in KIND_STYLES.items():
            if kind in kinds:
                c.node(f"legend_{kind}", label=style.label, shape=style.shape, style=style.style,
                       fillcolor=style.fill, fontcolor=style.font, fontsize=FONT["legend"])
        if any(i.group for i in plan.items):
            c.node("legend_group", label=GROUP_STYLE.label + " (click to expand)", shape=GROUP_STYLE.shape,
                   style="filled", fillcolor=GROUP_STYLE.fill, fontsize=FONT["legend"])
        if spec.added:
            c.node("legend_added", label="added", shape="box", color=ADDED, penwidth="2.5", fontsize=FONT["legend"])
        if spec.removed:
            c.node("legend_removed", label="removed", shape="box", style="filled,dashed", color=REMOVED,
                   fillcolor=REMOVED_FILL, fontcolor=REMOVED_FONT, fontsize=FONT["legend"])
        if spec.overlay:
            values = [v for _, v in spec.overlay]
            lo, hi = min(values), max(values)
            flip = spec.overlay_high_is_bad
            digits = spec.overlay_digits
            c.node("legend_overlay_lo", label=_esc(f"{spec.overlay_label} {lo:.{digits}f}"), shape="box",
                   style="filled", fillcolor=overlay_colour(hi if flip else lo, lo, hi), fontsize=FONT["legend"])
            c.node("legend_overlay_hi", label=_esc(f"{spec.overlay_label} {hi:.{digits}f}"), shape="box",
                   style="filled", fillcolor=overlay_colour(lo if flip else hi, lo, hi), fontsize=FONT["legend"])
