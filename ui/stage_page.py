"""One stage's page: what it did, its counts, its graph with the inspector, what changed, downloads."""
from __future__ import annotations

from dataclasses import replace
from functools import partial

import pandas as pd
import streamlit as st

from quantviz import Pipeline
from quantviz.config import ConfigError, config_flags
from quantviz.graph.diff import GraphDiff, diff_graphs
from quantviz.render import ViewSpec, dot_available, dot_to_svg, plan_view, to_dot
from quantviz.render.view import DEFAULT_MAX_NODES, collapse, expand_path_to
from quantviz.stage_counts import stage_counters
from quantviz.stage_views import linked_nodes, previous_graph_stage, stage_view
from quantviz.outputs import stage_file_stem
from ui.downloads import run_downloads, stage_downloads
from ui.graph_component import clicked_value, graph_view
from ui.inspector import inspector
from ui.runner import retry_failed
from ui.latency_panel import latency_overlay_for, latency_panel
from ui.ledger_panel import ledger_panel
from ui.numerics_panel import numerics_panel, overlay_pair, sqnr_overlay
from ui.sidebar import apply_changes
from ui.state import (COMPARE_NODE, EXPAND_DELEGATES, EXPANDED, QV_CLICK_HANDLED, QV_RUN, REVEAL, SELECTED_NODE,
                      VIEW_FOCUS, graph_key)


@st.cache_data(max_entries=128, show_spinner=False)
def layout_svg(dot: str) -> str | None:
    """graphviz's layout, once per DOT text: per (graph, expansion, filters); the selection is not in it."""
    return dot_to_svg(dot)


def counts_row(pipe: Pipeline, stage: str) -> None:
    """The counts that mean something for this stage (``quantviz.stage_counts``), left to right in six columns."""
    counters = stage_counters(pipe, stage)
    if not counters:
        return
    for col, c in zip(st.columns(6), counters):
        col.metric(c.label, c.value, help=c.help)


def error_panel(pipe: Pipeline, stage: str) -> None:
    """The failure: message and hint, a button applying the hint's config change (``err.fix``), the failing
    node, the chained causes and the libraries' log lines; the traceback only in the collapsed details."""
    err = pipe.results[stage].error
    st.error(f"**Stage '{stage}' failed: {err.message}**\n\nHint: {err.hint}", icon=":material/error:")
    if err.fix:
        try:
            flags = config_flags(pipe.config.with_changes(**err.fix), base=pipe.config)
        except (ConfigError, TypeError):  # a fix naming no valid config: offer no button
            flags = ""
        if flags:
            st.button(f"Apply: {flags}", on_click=apply_changes, args=(dict(err.fix),), type="primary",
                      key="apply_fix_button", help="change the sidebar options as the hint says and run again")
    if any(c.startswith("WorkerDied:") for c in err.causes):  # the process died: the same config may pass again
        st.button("Run this stage again", on_click=retry_failed, args=(pipe,), key="retry_stage_button",
                  help="the stages before it are kept; only this stage runs again, in a new worker process")
    site = err.site
    if site is not None:
        rows = [("Failing node", f"`{site.node}` = `{site.target}`"),
                ("Inputs", ", ".join(f"`{i}`" for i in site.inputs) or "none"),
                ("Module", f"`{site.module}` ({site.module_type})" if site.module else ""),
                ("Source line", f"`{site.source}`" if site.source else ""),
                ("While running", site.during),
                ("Dtype changed", site.dtype_drift),
                ("Metadata from", f"node `{site.meta_from}` (the failing node was created by a pass)"
                 if site.meta_from else "")]
        st.markdown("\n".join(f"- **{k}:** {v}" for k, v in rows if v))
    if err.causes:
        st.markdown("**Chained causes** (outermost first):\n" +
                    "\n".join(f"{i}. `{c}`" for i, c in enumerate(err.causes, 1)))
    if err.log:
        st.caption(f"What torch / torchao / executorch logged during the stage ({len(err.log)} line(s)):")
        st.code("\n".join(err.log), language="text", wrap_lines=True)  # a runtime's last words in full
    if err.metrics:
        st.dataframe(pd.DataFrame([err.metrics]), hide_index=True)
    with st.expander("details"):
        st.code(err.details or "(no details)", language="text")


def view_controls(pipe: Pipeline, stage: str, model_ref: str = "") -> ViewSpec:
    """View options: they change only the drawing, never the pipeline. The selection is drawn in the browser
    (not part of the spec), so selecting a node never lays the graph out again."""
    graph = pipe.results[stage].graph
    with st.expander("View", expanded=False):
        c = st.columns(5)
        depth = c[0].selectbox("Collapse by module", ["auto", "full detail", 1, 2, 3, 4, 5, 6], key="v_depth",
                               help="auto: a graph over 300 nodes opens at its top-level modules")
        quant_only = c[1].toggle("Quantization nodes only", key="v_quant")
        show_params = c[2].toggle("Show weights", value=True, key="v_params")
        search = c[3].text_input("Search (regex)", key="v_search",
                                 help="matches are outlined; 'Open the matches' expands every module around them")
        hops = c[4].number_input("Focus hops", 1, 6, 2, key="v_hops")
        c2 = st.columns(4)
        focus = c2[0].toggle("Focus on the selected node", key="v_focus")
        delegates = [n.id for n in graph.nodes if n.kind == "delegate"]
        expand = c2[1].toggle("Expand delegates", key=EXPAND_DELEGATES, disabled=not delegates)
        patterns = c2[2].toggle("Pattern clusters", value=True, key="v_patterns")
        if search:
            c2[3].button("Open the matches", key="v_open_matches", on_click=open_matches, args=(graph, search),
                         help="expand every module enclosing the first matches and centre on the first")
        overlay = sqnr_overlay(pipe, model_ref, stage)
        by_sqnr = st.toggle("Colour by SQNR", key="v_sqnr", disabled=not overlay,
                            help="per-node numerics from the run page's 'Compare node by node'" if overlay else
                            "compute 'Compare node by node' on the run page first")
        timed = latency_overlay_for(pipe, model_ref, stage)  # () off the lowered stage, or before it was timed
        by_ms = stage == pipe.role("lowered") and st.toggle(
            "Colour by latency", key="v_latency", disabled=not timed,
            help="each node's median ms in this machine's runtime (most time in red)" if timed else
            "'Measure latency' on the run page first")
    selected = st.session_state[SELECTED_NODE]
    spec = ViewSpec(
        collapse_depth=None if depth == "auto" else (None if depth == "full detail" else int(depth)),
        max_nodes=10**9 if depth == "full detail" else DEFAULT_MAX_NODES,
        expanded=expanded_modules(stage),
        focus=selected if focus and selected else None, hops=int(hops), quant_only=quant_only,
        search=search or None, show_patterns=patterns, show_params=show_params,
        expand_delegates=tuple(delegates) if expand else (),
        overlay=overlay if by_sqnr else (), overlay_label="SQNR dB" if by_sqnr else "")
    if by_ms:  # the latency overlay replaces the SQNR one
        spec = replace(spec, overlay=timed, overlay_label="ms", overlay_high_is_bad=True, overlay_digits=3)
    return stage_view(pipe, stage, spec)


def expanded_modules(stage: str) -> tuple[str, ...]:
    """The modules drawn open on ``stage``'s graph (kept per stage in the session)."""
    return tuple(st.session_state[EXPANDED].get(stage, ()))


def set_expanded(stage: str, modules: tuple[str, ...], focus: str | None = None, pane: str = "") -> None:
    """Open exactly ``modules`` on ``stage``; ``focus`` (a box id) is centred in the pane when it is drawn next."""
    st.session_state[EXPANDED][stage] = tuple(modules)
    if focus:
        st.session_state[VIEW_FOCUS][pane or graph_key(stage)] = focus


def open_matches(graph, pattern: str, limit: int = 5) -> None:
    """Expand the path to the first ``limit`` search matches (every module enclosing each) and centre the first."""
    matches = plan_view(graph, ViewSpec(search=pattern, max_nodes=10**9)).matches[:limit]
    modules = expanded_modules(graph.stage)
    for m in matches:
        modules = expand_path_to(graph, m, modules)
    set_expanded(graph.stage, modules, matches[0] if matches else None)


def reveal(graph, node_id: str, pane: str) -> None:
    """Select ``node_id`` and show it in the pane ``pane``: every module around it opened (its delegate's ops drawn
    when it is inside one), centred and ringed when the pane is drawn next ("Find a node")."""
    st.session_state[SELECTED_NODE] = node_id
    st.session_state[COMPARE_NODE] = None
    owner = next((n.id for n in graph.nodes if n.subgraph in graph.subgraphs
                  and any(s.id == node_id for s in graph.subgraphs[n.subgraph].nodes)), None)
    if owner is not None:
        st.session_state[EXPAND_DELEGATES] = True
    set_expanded(graph.stage, expand_path_to(graph, owner or node_id, expanded_modules(graph.stage)))
    st.session_state[REVEAL][pane] = node_id


def diff_section(pipe: Pipeline, stage: str) -> None:
    """One line: what changed since the previous stage with a graph."""
    against = previous_graph_stage(pipe, stage)
    if against is None:
        return
    d = diff_graphs(pipe.results[against].graph, pipe.results[stage].graph)
    st.caption(f"Since **{against}**: {d.summary()}")


def compare_choice(pipe: Pipeline, stage: str) -> str | None:
    """The stage to show side by side ("compare with stage …"), any other stage with a graph, or None."""
    others = [s for s in pipe.stage_names if s != stage and pipe.results.get(s) and pipe.results[s].ok
              and pipe.results[s].graph is not None]
    options = ["—", *others]  # drawn while nothing else has run too (disabled): the page below never jumps
    choice = st.selectbox("Compare with stage …", options, key=f"compare_{stage}", disabled=not others,
                          help="both graphs side by side: a click selects the node's counterparts in the other "
                               "(matched by provenance); added nodes outlined green, removed ones greyed and dashed")
    return None if choice == "—" else choice


def graph_panel(pipe: Pipeline, stage: str, spec: ViewSpec, other: str | None,
                model_ref: str = "") -> tuple[str, str | None]:
    """The stage's graph, or two linked panes with ``other``; the inspector. Returns (DOT, SVG) of the stage."""
    graph = pipe.results[stage].graph
    if spec.overlay and spec.overlay_label == "ms":
        most = max(spec.overlay, key=lambda kv: kv[1])
        st.caption(f"Coloured by median ms in this machine's runtime (the run page's latency) on "
                   f"{len(spec.overlay)} nodes; most: {most[0]} at {most[1]:.3f} ms.")
    elif spec.overlay:
        worst = min(spec.overlay, key=lambda kv: kv[1])
        pair = overlay_pair(pipe, model_ref, stage)
        st.caption(f"Coloured by {spec.overlay_label} ({pair}) on {len(spec.overlay)} nodes; "
                   f"worst: {worst[0]} at {worst[1]:.1f} dB.")
    if other is None:
        left, right = st.columns([3, 1])
        with left:
            sel = _own_selection(stage)
            dot, svg = _draw(graph, spec, graph_key(stage), sel, ())
        with right:
            inspector(graph, st.session_state[SELECTED_NODE], dict(spec.notes),
                      on_pick=partial(reveal, graph, pane=graph_key(stage)))
        return dot, svg
    return _linked_panes(pipe, stage, spec, other)


def _own_selection(stage: str) -> tuple[str, ...]:
    selected = st.session_state[SELECTED_NODE]
    return (selected,) if selected else ()


def _linked_panes(pipe: Pipeline, stage: str, spec: ViewSpec, other: str) -> tuple[str, str | None]:
    """Two panes in stage order, the diff drawn in place; a click in either selects its counterparts in the
    other (a Streamlit rerun: the selection lives in ``st.session_state``)."""
    before, after = sorted((stage, other), key=pipe.flow.index)
    d = diff_graphs(pipe.results[before].graph, pipe.results[after].graph)
    st.info(f"**{before}** → **{after}**: {d.summary()}")
    sel = _linked_selection(pipe, stage, other, d)
    specs = {stage: spec, other: _other_spec(pipe, other, spec)}
    specs[after] = replace(specs[after], added=tuple(d.added))
    specs[before] = replace(specs[before], removed=tuple(d.removed))
    out: dict[str, tuple[str, str | None]] = {}
    for col, s in zip(st.columns(2), (before, after)):
        with col:
            mark = "removed nodes greyed and dashed" if s == before else "added nodes outlined green"
            st.caption(f"**{s}**" + (" (this stage)" if s == stage else "") + f": {mark}")
            out[s] = _draw(pipe.results[s].graph, specs[s], graph_key(s, compared=s != stage),
                           *sel[s], owner=stage, pane=s)
    clicked = st.session_state[COMPARE_NODE]
    in_other = bool(clicked) and tuple(clicked[:2]) == (stage, other)
    with st.expander(f"Inspector ({other if in_other else stage})", expanded=True):
        if in_other:
            inspector(pipe.results[other].graph, clicked[2], dict(specs[other].notes))
        else:
            inspector(pipe.results[stage].graph, st.session_state[SELECTED_NODE], dict(spec.notes),
                      on_pick=partial(reveal, pipe.results[stage].graph, pane=graph_key(stage)))
    return out[stage]


def _other_spec(pipe: Pipeline, other: str, spec: ViewSpec) -> ViewSpec:
    base = ViewSpec(collapse_depth=spec.collapse_depth, max_nodes=spec.max_nodes, expanded=expanded_modules(other),
                    quant_only=spec.quant_only, show_patterns=spec.show_patterns, show_params=spec.show_params,
                    search=spec.search)
    return stage_view(pipe, other, base)


def _linked_selection(pipe: Pipeline, stage: str, other: str, d: GraphDiff
                      ) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Per pane, (selected node ids, linked node ids): the clicked node and its counterparts by provenance."""
    clicked = st.session_state[COMPARE_NODE]
    before = pipe.results[d.before].graph
    out = {stage: (_own_selection(stage), ()), other: ((), ())}
    if clicked and clicked[0] == stage and clicked[1] == other:  # a click in the other pane
        out[other] = ((clicked[2],), ())
        out[stage] = ((), tuple(linked_nodes(d, clicked[2], other, before)))
    elif st.session_state[SELECTED_NODE]:
        out[other] = ((), tuple(linked_nodes(d, st.session_state[SELECTED_NODE], stage, before)))
    return out


def _draw(graph, spec: ViewSpec, key: str, selected: tuple[str, ...] = (), linked: tuple[str, ...] = (),
          owner: str | None = None, pane: str | None = None) -> tuple[str, str | None]:
    """Plan, DOT, the cached layout and the viewer for one pane; handles the pane's click (select, expand,
    collapse). ``owner`` is the page's stage, ``pane`` the stage drawn here (the same without a comparison)."""
    owner, pane = owner or graph.stage, pane or graph.stage
    plan = plan_view(graph, spec)
    dot = to_dot(graph, spec, plan)
    _breadcrumb(pane, key, plan)
    if spec.search:
        st.caption(f"search: {len(plan.matches)} match(es)")
    svg = layout_svg(dot) if dot_available() else None
    if svg is None:
        st.warning("graphviz's `dot` is not installed: showing DOT text (scripts/system_deps.sh installs it).")
        st.code(dot, language="dot")
        return dot, None
    found = st.session_state[REVEAL].pop(key, None)
    focus = st.session_state[VIEW_FOCUS].pop(key, None) or (linked[0] if linked else None)
    focus = found or focus
    if found and plan.box_of(found) is None and found not in _inner_drawn(graph, spec):
        st.caption(f"`{found}` is hidden by the view's filters (View: quantization nodes only, focus).")
    clicked = graph_view(svg, key=key, selected=_boxes(plan, selected), linked=_boxes(plan, linked),
                         focus=plan.box_of(focus) or focus if focus else None, run=st.session_state[QV_RUN],
                         on_click=partial(_clicked_callback, key, owner, pane), reveal=bool(found))
    handled = st.session_state[QV_CLICK_HANDLED]
    st.session_state[QV_CLICK_HANDLED] = None
    if clicked and handled != (key, clicked):  # the callback could not read the click: handle it and run again
        _on_click(clicked, key, owner, pane)
        st.rerun()
    return dot, svg


def _inner_drawn(graph, spec: ViewSpec) -> set[str]:
    """The ops drawn inside expanded delegates (not boxes of the plan)."""
    return {s.id for n in graph.nodes if n.id in spec.expand_delegates and n.subgraph in graph.subgraphs
            for s in graph.subgraphs[n.subgraph].nodes}


def _clicked_callback(key: str, owner: str, pane: str) -> None:
    """Handle a click before the script runs, so the run that follows draws its effect (one run, not two)."""
    clicked = clicked_value(key)
    if clicked:
        _on_click(clicked, key, owner, pane)
        st.session_state[QV_CLICK_HANDLED] = (key, clicked)


def _boxes(plan, node_ids: tuple[str, ...]) -> list[str]:
    """The drawn boxes holding ``node_ids`` (a collapsed module's box when a node is inside one)."""
    return list(dict.fromkeys(b for b in (plan.box_of(n) or n for n in node_ids) if b))


def _on_click(clicked: str, key: str, owner: str, pane: str) -> None:
    """A module box expands in place, an open module's title collapses it, a node is selected."""
    expanded = expanded_modules(pane)
    if clicked.startswith("module/"):
        path = clicked.removeprefix("module/")
        set_expanded(pane, tuple(dict.fromkeys((*expanded, path))), f"open/{path}", key)
    elif clicked.startswith("open/"):
        path = clicked.removeprefix("open/")
        set_expanded(pane, collapse(expanded, path), f"module/{path}", key)
    elif pane == owner:
        st.session_state[SELECTED_NODE] = clicked
        st.session_state[COMPARE_NODE] = None
    else:
        st.session_state[COMPARE_NODE] = (owner, pane, clicked)
        st.session_state[SELECTED_NODE] = None


def _breadcrumb(stage: str, key: str, plan) -> None:
    """The view's path: the overview, then each open module with a button that collapses it."""
    expanded = expanded_modules(stage)
    if plan.depth:
        st.caption(f"{plan.total_nodes} nodes in {plan.visible_count} boxes (module depth {plan.depth}); click a "
                   "module box to expand it in place, an open module's title to collapse it.")
    if not expanded:
        return
    with st.container(horizontal=True, gap="small"):
        st.button("⌂ overview", key=f"{key}_crumb_all", type="tertiary", help="collapse every module",
                  on_click=set_expanded, args=(stage, (), None, key))
        for path in expanded:
            st.button(f"✕ {path}", key=f"{key}_crumb_{path}", type="tertiary", help=f"collapse {path}",
                      on_click=set_expanded, args=(stage, collapse(expanded, path), f"module/{path}", key))


def table_panel(pipe: Pipeline, stage: str, rows: list) -> None:
    """A stage's table (the quantize stage's weights: module, config, dtype, block size, scale shape), with its CSV."""
    frame = pd.DataFrame([r.to_dict() for r in rows])
    st.dataframe(frame, hide_index=True, width="stretch")
    st.download_button("table CSV", frame.to_csv(index=False), f"{stage_file_stem(pipe, stage)}.csv", "text/csv",
                       key=f"dl_table_{stage}")


def absent_page(flow, stage: str) -> None:
    """A stage the flow does not have: said so, with the reason, nothing faked."""
    st.subheader(f"{flow.number(stage)}. {stage}")
    st.info(f"**Not part of the {flow.name} flow.** {flow.absent[stage]}", icon=":material/block:")


def stage_page(pipe: Pipeline, stage: str, model_ref: str) -> None:
    """A stage's page, drawn once the run reached it: title, explanation, notes, API calls, table, graph, numerics
    (the title comes with the page, so a test or a reader that sees it sees the page)."""
    info = pipe.stage(stage)
    st.subheader(f"{pipe.flow.number(stage)}. {stage}")
    first, _, rest = info.explanation.partition(". ")
    st.caption(first + ("." if rest else ""), help=info.explanation if rest else None)  # the graph stays in view
    result = pipe.results.get(stage)
    if result is None:
        st.info("This stage has not run: a stage before it failed.")
        return
    if not result.ok:
        error_panel(pipe, stage)
        return
    counts_row(pipe, stage)
    for note in result.notes:
        st.caption("• " + note)
    if result.calls:
        with st.expander("API calls this stage made", expanded=False):
            st.code("\n".join(result.calls), language="python")
    if result.table is not None:
        table_panel(pipe, stage, result.table)
    if result.graph is None and stage != "run":
        return
    if stage == "run":
        numerics_panel(pipe, model_ref)
        latency_panel(pipe, model_ref)
        st.markdown("#### Downloads")
        run_downloads(pipe, model_ref)
        return
    st.session_state[QV_RUN] += 1  # the viewer shows it: reruns are countable
    diff_section(pipe, stage)
    left, right = st.columns([1, 3], vertical_alignment="bottom")
    with left:
        other = compare_choice(pipe, stage)
    with right:
        spec = view_controls(pipe, stage, model_ref)
    dot, svg = graph_panel(pipe, stage, spec, other, model_ref)
    with st.expander("Downloads for this stage"):
        stage_downloads(pipe, stage, dot, svg)
    if stage in ("delegate", "fuse") and "fuse" in pipe.results and pipe.results["fuse"].ok:
        ledger_panel(pipe, model_ref)
