"""The graph viewer: the SVG from `dot`, panned and zoomed in the browser; a click is sent back to Python.

Built with ``st.components.v2``, no front-end build: the browser side is ``graph_component.js`` (an ES module
whose default export the component calls) and ``graph_component.css`` beside this file, read at import and passed
inline (``tests/test_graph_component.py`` parses the JS with node). Node ``<g>`` elements carry the ids
``qv_<box id>`` that quantviz's renderer writes (``qv_module/<path>`` a collapsed module, ``qv_open/<path>``
an expanded module's cluster).

A new drawing opens fitted to its pattern and delegate clusters (all of them when their labels stay readable, at
least 70 % of natural size, else the first ones top to bottom, none cut through); a drawing without any opens at
natural size on its input.

In the browser, with no Streamlit rerun: wheel zoom around the pointer, drag to pan, the Fit / 1:1 / + / −
buttons, the overview inset (where the viewport is; click it to move there), hover (a box and its edges),
find-a-box (centres and highlights it) and the selection marks. A rerun comes only from a click on a box
(select a node, expand a module) or on an open module's title (collapse it). The viewport survives a rerun
while the SVG is unchanged, and a remount of the component (kept per component key in ``window``).

For tests and benchmarks the root element (``[data-testid=qv-graph]``) carries ``root.qv``::

    root.qv.zoomBy(2, x, y)  root.qv.panBy(dx, dy)  root.qv.fit()  root.qv.oneToOne()  root.qv.highlight(id)
    root.qv.viewBox()        # [x, y, w, h]
    root.qv.last             # {action, ms}: the last interaction, from the call to the frame painted after it

Each action returns a Promise of its frame time in ms. ``root.dataset.run`` is the page's run counter when the
component was last drawn (a test reads it to show that no rerun happened).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Sequence

import streamlit as st

HERE = Path(__file__).resolve().parent
# The viewer's front end, real files beside this one (read once, at import): no build step, linted as what they are.
_CSS = (HERE / "graph_component.css").read_text(encoding="utf-8")
_JS = (HERE / "graph_component.js").read_text(encoding="utf-8")

_GRAPH = st.components.v2.component("quantviz.graph", css=_CSS, js=_JS, isolate_styles=False)


def clicked_value(key: str) -> str | None:
    """The box id a click on the viewer ``key`` sent, read inside its ``on_click`` callback (None if unreadable)."""
    state = st.session_state.get(key)
    value = state.get("clicked") if hasattr(state, "get") else getattr(state, "clicked", None)
    return value if isinstance(value, str) else None


def graph_view(svg: str, key: str, selected: Sequence[str] = (), linked: Sequence[str] = (),
               focus: str | None = None, run: int = 0, height: int = 640,
               on_click: Callable[[], None] | None = None, reveal: bool = False) -> str | None:
    """Draw ``svg`` at its natural size in a ``height``-px pane that pans and zooms in the browser; returns the
    box id clicked in this run (a node id, ``module/<path>`` to expand, ``open/<path>`` to collapse), if any.

    ``selected`` / ``linked`` are box ids marked blue / orange (the selection here and its counterparts from a
    linked pane); ``focus`` a box id to centre on when it changes (an expanded module, a search match); with
    ``reveal`` it is centred and ringed even when it was the last focus (a node chosen in "Find a node")::

        clicked = graph_view(svg, key="graph_convert", selected=["conv1"], focus="open/blocks.3", run=7)

    ``on_click`` runs before the script reruns on a click (read the value with ``clicked_value(key)``): handling
    the click there draws its effect in that same run instead of a second one.
    """
    digest = hashlib.sha1(svg.encode("utf-8")).hexdigest()
    result = _GRAPH(data={"svg": svg, "key": digest, "comp": key, "selected": list(selected), "linked": list(linked),
                          "focus": focus or "", "reveal": reveal, "run": run, "height": height}, key=key,
                    on_clicked_change=on_click or (lambda: None))
    return getattr(result, "clicked", None)
