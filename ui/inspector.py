"""The node inspector: everything the graph model holds about one node, and its whole pattern. "Find a node" finds
every node whose name contains the text typed; choosing one calls ``on_pick`` (the stage page reveals it in the
graph). Its tables wrap long cells (``inspector.css`` beside this file) instead of cutting them off."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd
import streamlit as st

from quantviz.graph import GraphView, NodeView
from ui.state import SELECTED_NODE, inspector_key


def qparams_rows(n: NodeView) -> list[dict]:
    q = n.qparams
    if q is None:
        return []
    rows = [{"field": "scheme", "value": q.scheme}, {"field": "dtype", "value": q.dtype}]
    if q.block_size:  # torchao's affine ops: the elements one scale covers
        rows.append({"field": "block size", "value": " × ".join(map(str, q.block_size))})
    if q.scheme == "per_group":
        rows += [{"field": "group size", "value": q.group_size},
                 {"field": "scale shape", "value": " × ".join(map(str, q.scale_shape or []))},
                 {"field": "scales", "value": f"{q.scale_min:.4g} … {q.scale_max:.4g} (one LSB per group)"
                  if q.scale_min is not None else None}]
    elif q.scheme == "per_channel":
        rows += [{"field": "axis", "value": q.axis}, {"field": "channels", "value": q.channels}]
        if isinstance(q.scale, list):
            rows += [{"field": "scale (first 8)", "value": ", ".join(f"{s:.4g}" for s in q.scale[:8])},
                     {"field": "zero point (first 8)", "value": ", ".join(map(str, (q.zero_point or [])[:8]))}]
        elif q.scale_min is not None:
            rows.append({"field": "scales", "value": f"{q.scale_min:.4g} … {q.scale_max:.4g}"})
    elif q.scale is None and q.zero_point is None:  # dynamic activations: choose_qparams makes them per input
        rows += [{"field": "scale", "value": "computed at run time"},
                 {"field": "zero point", "value": "computed at run time"}]
    else:
        rows += [{"field": "scale", "value": q.scale}, {"field": "zero point", "value": q.zero_point}]
    rows += [{"field": "quant min", "value": q.quant_min}, {"field": "quant max", "value": q.quant_max}]
    return [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in rows]


_CSS = (Path(__file__).resolve().parent / "inspector.css").read_text(encoding="utf-8")


def inspector(graph: GraphView, selected: str | None, notes: dict[str, str] | None = None,
              on_pick: Callable[[str], None] | None = None) -> None:
    """Everything about the selected node; ``notes`` (node id -> text) adds e.g. why it was not fused; ``on_pick``
    gets the node chosen in "Find a node" (by default it is only selected)."""
    with st.container(key="qv_inspector"):
        st.html(f"<style>{_CSS}</style>")  # style only: takes no room
        _inspector(graph, selected, notes, on_pick)


def _inspector(graph: GraphView, selected: str | None, notes: dict[str, str] | None,
               on_pick: Callable[[str], None] | None) -> None:
    st.markdown("#### Inspector")
    ids = [n.id for n in graph.nodes] + [n.id for g in graph.subgraphs.values() for n in g.nodes]
    key = inspector_key(graph.stage)
    st.session_state[key] = selected if selected in ids else None  # a click in the graph selects here too

    def picked() -> None:
        choice = st.session_state[key]
        if choice and on_pick is not None:
            on_pick(choice)
        else:
            st.session_state[SELECTED_NODE] = choice

    # "contains": every node whose name holds the text, in graph order (the fuzzy default ranks subsequences)
    choice = st.selectbox("Find a node", ids, key=key, on_change=picked, filter_mode="contains",
                          placeholder="click a node or type part of its name")
    if choice is None:
        st.caption("Click a node in the graph, or search for it by name.")
        return
    node = _find(graph, choice)
    st.markdown(f"**{node.name}** · `{node.kind}`")
    if notes and choice in notes:
        st.warning(notes[choice])
    facts = {"target": node.target, "op": node.op,
             "inputs": ", ".join(node.inputs) or "—", "args": ", ".join(node.args) or "—",
             "shape": f"{node.shape} {node.dtype or ''}" if node.shape is not None else "—",
             **({"input": node.input_path} if node.input_path else {}),
             **({"dynamic": ", ".join(node.dynamic_dims)} if node.dynamic_dims else {}),
             "module": f"{node.module_path} ({node.module_type})" if node.module_path else "—",
             "source": node.source or "—", "came from": " ← ".join(node.lineage[:4]) or "—"}
    if node.backend:
        facts["backend"] = node.backend
    st.table(pd.DataFrame({"field": list(facts), "value": list(facts.values())}).set_index("field"))
    rows = qparams_rows(node)
    if rows:
        st.markdown("**Quantization parameters**")
        st.table(pd.DataFrame(rows).set_index("field"))
    for p in graph.patterns:
        if choice in p.members:
            st.markdown(f"**Pattern {p.id}: {p.label()}** ({p.dtype or ''})")
            members = [_find(graph, m) for m in p.members]
            st.table(pd.DataFrame([{"node": m.name, "kind": m.kind, "qparams": m.qparams.label()
                                    if m.qparams else ""} for m in members]).set_index("node"))


def _find(graph: GraphView, node_id: str) -> NodeView:
    for n in graph.nodes:
        if n.id == node_id:
            return n
    for g in graph.subgraphs.values():
        for n in g.nodes:
            if n.id == node_id:
                return n
    raise KeyError(node_id)
