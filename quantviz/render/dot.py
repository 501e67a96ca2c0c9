"""Turn a graph model plus a view description into DOT text (the graphviz package writes it).

    dot = to_dot(pipe.results["convert"].graph, ViewSpec())
    svg = dot_to_svg(dot)   # needs the `dot` binary

Node ``id`` attributes are ``qv_<node id>`` so a page can find the SVG element of a node.
"""
from __future__ import annotations

import graphviz

from quantviz.graph.model import GraphView, NodeView
from quantviz.render.palette import (
    ADDED, DELEGATE_CLUSTER, GROUP_STYLE, HIGHLIGHT, KIND_STYLES, PATTERN_CLUSTER, REMOVED, overlay_colour,
)
from quantviz.render.view import ViewPlan, ViewSpec, plan_view


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
    if note:
        lines.append(note)
    return "\\n".join(_esc(line) for line in lines)


def node_tooltip(n: NodeView, note: str | None = None) -> str:
    rows = [f"{n.kind}: {n.target}"]
    if n.qparams is not None:
        rows.append(n.qparams.label())
    if n.shape is not None:
        rows.append(f"shape {n.shape} {n.dtype or ''}")
    if n.module_path:
        rows.append(f"module {n.module_path}" + (f" ({n.module_type})" if n.module_type else ""))
    if n.source:
        rows.append(f"source {n.source}")
    if note:
        rows.append(note)
    return _esc(" | ".join(rows))


def to_dot(graph: GraphView, spec: ViewSpec = ViewSpec(), plan: ViewPlan | None = None) -> str:
    """DOT text for ``graph`` as ``spec`` describes it (the plan is computed when not given)."""
    plan = plan or plan_view(graph, spec)
    by_id = {n.id: n for n in graph.nodes}
    notes = dict(spec.notes)
    overlay = dict(spec.overlay)
    lo, hi = (min(overlay.values()), max(overlay.values())) if overlay else (0.0, 1.0)
    added, removed = set(spec.added), set(spec.removed)

    dot = graphviz.Digraph(name=graph.stage or "graph")
    dot.attr(rankdir="TB", fontname="Helvetica", fontsize="11", nodesep="0.25", ranksep="0.35",
             label=_esc(f"{graph.stage}: {len(graph.nodes)} nodes" + (f", collapsed to depth {plan.depth}"
                                                                      if plan.depth else "")), labelloc="t")
    dot.attr("node", fontname="Helvetica", fontsize="10", margin="0.08,0.03", height="0.3")
    dot.attr("edge", color="#64748b", arrowsize="0.6")

    singles = {i.id for i in plan.items if i.group is None}
    placed: set[str] = set()

    def add_node(target: graphviz.Digraph, n: NodeView) -> None:
        style = KIND_STYLES.get(n.kind, KIND_STYLES["other"])
        attrs = {"shape": style.shape, "style": style.style, "fillcolor": style.fill, "fontcolor": style.font,
                 "id": svg_id(n.id), "tooltip": node_tooltip(n, notes.get(n.id)), "class": f"qv-node qv-{n.kind}"}
        if n.id in overlay:
            attrs["fillcolor"] = overlay_colour(overlay[n.id], lo, hi)
            attrs["fontcolor"] = "#1d1d1f"
        if n.id in plan.highlighted:
            attrs.update(HIGHLIGHT)
        if n.id in added:
            attrs.update({"color": ADDED, "penwidth": "2.5"})
        if n.id in removed:
            attrs.update({"color": REMOVED, "penwidth": "2.5", "style": style.style + ",dashed"})
        note = notes.get(n.id)
        if n.id in overlay:
            note = (note + " · " if note else "") + f"{spec.overlay_label} {overlay[n.id]:.1f}".strip()
        target.node(n.id, label=node_label(n, note), **attrs)
        placed.add(n.id)

    # reference quantized patterns: one labelled cluster each
    if spec.show_patterns and plan.depth is None:
        for p in graph.patterns:
            members = [m for m in p.members if m in singles and m not in placed]
            if len(members) < 2:
                continue
            with dot.subgraph(name=f"cluster_{p.id}") as c:
                c.attr(label=_esc(p.label()), tooltip=_esc(f"pattern {p.id}: {p.label()} ({p.dtype or ''})"),
                       id=f"qv_pattern_{p.id}", **PATTERN_CLUSTER)
                for m in members:
                    add_node(c, by_id[m])

    # delegate calls: a cluster titled with the backend and the number of ops inside
    for n in graph.nodes:
        if n.kind != "delegate" or n.id not in singles or n.id in placed:
            continue
        sub = graph.subgraphs.get(n.subgraph or "")
        inner = [s for s in sub.nodes if s.kind not in ("input", "parameter", "output")] if sub else []
        with dot.subgraph(name=f"cluster_delegate_{n.id}") as c:
            c.attr(label=_esc(f"{n.backend or 'delegate'} · {len(inner)} ops"), id=f"qv_delegate_{n.id}",
                   **DELEGATE_CLUSTER)
            add_node(c, n)
            if sub is not None and n.id in spec.expand_delegates:
                inner_ids = {s.id for s in inner}
                for s in inner:
                    add_node(c, s)
                for s in inner:
                    for i in s.inputs:
                        if i in inner_ids:
                            c.edge(i, s.id)

    for item in plan.items:
        if item.group is not None:
            kinds: dict[str, int] = {}
            for m in item.members:
                kinds[by_id[m].kind] = kinds.get(by_id[m].kind, 0) + 1
            detail = ", ".join(f"{kinds[k]} {k.replace('_', ' ')}" for k in ("quantize", "dequantize", "delegate",
                                                                             "quantized_op") if kinds.get(k))
            label = f"{item.group}\\n{len(item.members)} nodes" + (f"\\n{detail}" if detail else "")
            attrs = {"shape": GROUP_STYLE.shape, "style": GROUP_STYLE.style, "fillcolor": GROUP_STYLE.fill,
                     "id": svg_id(item.id), "tooltip": _esc(f"module {item.group}: {len(item.members)} nodes"),
                     "class": "qv-node qv-group"}
            if item.id in plan.highlighted:
                attrs.update(HIGHLIGHT)
            dot.node(item.id, label=_esc(label).replace("\\\\n", "\\n"), **attrs)
        elif item.id not in placed:
            add_node(dot, by_id[item.id])
    for src, dst in plan.edges:
        dot.edge(src, dst)
    _legend(dot, graph, plan, spec)
    return dot.source


def _legend(dot: graphviz.Digraph, graph: GraphView, plan: ViewPlan, spec: ViewSpec) -> None:
    kinds = {graph.node(m).kind for item in plan.items for m in item.members if item.group is None}
    with dot.subgraph(name="cluster_legend") as c:
        c.attr(label="legend", style="rounded", color="#cbd5e1", fontcolor="#475569", id="qv_legend")
        for kind, style in KIND_STYLES.items():
            if kind in kinds:
                c.node(f"legend_{kind}", label=style.label, shape=style.shape, style=style.style,
                       fillcolor=style.fill, fontcolor=style.font, fontsize="9")
        if any(i.group for i in plan.items):
            c.node("legend_group", label=GROUP_STYLE.label, shape=GROUP_STYLE.shape, style="filled",
                   fillcolor=GROUP_STYLE.fill, fontsize="9")
        if spec.overlay:
            values = [v for _, v in spec.overlay]
            lo, hi = min(values), max(values)
            c.node("legend_overlay_lo", label=_esc(f"{spec.overlay_label} {lo:.1f}"), shape="box", style="filled",
                   fillcolor=overlay_colour(lo, lo, hi), fontsize="9")
            c.node("legend_overlay_hi", label=_esc(f"{spec.overlay_label} {hi:.1f}"), shape="box", style="filled",
                   fillcolor=overlay_colour(hi, lo, hi), fontsize="9")
