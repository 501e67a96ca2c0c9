"""A clickable graph: the SVG from `dot`, with a click on a node sent back to Python.

Built with ``st.components.v2`` (inline HTML/JS, no front-end build). Node ``<g>`` elements carry the
ids ``qv_<node id>`` that quantviz's renderer writes.
"""
from __future__ import annotations

import hashlib

import streamlit as st

_CSS = """
.qv-graph { overflow: auto; max-height: 78vh; border: 1px solid #e2e8f0; border-radius: 6px; background: #fff; }
.qv-graph svg { width: 100%; height: auto; }  /* fit the pane */
.qv-graph.qv-zoom svg { width: auto; }
.qv-graph g.node { cursor: pointer; }
.qv-graph g.node.qv-selected polygon, .qv-graph g.node.qv-selected ellipse, .qv-graph g.node.qv-selected path {
  stroke: #2563eb; stroke-width: 4px; }
"""

_JS = """
export default function(component) {
  const { data, setTriggerValue, parentElement } = component;
  let root = parentElement.querySelector('.qv-graph');
  if (!root) {
    root = document.createElement('div');
    root.className = 'qv-graph';
    root.setAttribute('data-testid', 'qv-graph');
    parentElement.appendChild(root);
  }
  root.classList.toggle('qv-zoom', !data.fit);
  if (root.dataset.key !== data.key) {
    root.innerHTML = data.svg;
    root.dataset.key = data.key;
  }
  root.querySelectorAll('g.node').forEach((g) => {
    if (!g.id || !g.id.startsWith('qv_')) return;
    g.classList.toggle('qv-selected', g.id === 'qv_' + data.selected);
    g.onclick = (event) => { event.preventDefault(); setTriggerValue('clicked', g.id.slice(3)); };
  });
}
"""

_GRAPH = st.components.v2.component("quantviz.graph", css=_CSS, js=_JS, isolate_styles=False)


def graph_view(svg: str, key: str, selected: str | None = None, fit: bool = True) -> str | None:
    """Draw ``svg`` (scaled to the pane's width with ``fit``, else at full size with scrolling); returns the
    id of the node clicked in this run, if any."""
    digest = hashlib.sha1(svg.encode("utf-8")).hexdigest()
    result = _GRAPH(data={"svg": svg, "key": digest, "selected": selected or "", "fit": fit}, key=key,
                    on_clicked_change=lambda: None)
    return getattr(result, "clicked", None)
