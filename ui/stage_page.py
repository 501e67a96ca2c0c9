"""One stage's page: what it did, its counts, its graph with the inspector, what changed, downloads."""
from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from quantviz import Pipeline
from quantviz.config import STAGES, ConfigError, config_flags
from quantviz.diff import GraphDiff, diff_graphs
from quantviz.render import ViewSpec, dot_available, dot_to_svg, plan_view, to_dot
from quantviz.stage_views import previous_graph_stage, stage_diff, stage_view
from quantviz.stages import STAGE_BY_NAME
from ui.downloads import run_downloads, stage_downloads
from ui.graph_component import graph_view
from ui.inspector import inspector
from ui.ledger_panel import ledger_panel
from ui.numerics_panel import numerics_panel, sqnr_overlay
from ui.sidebar import apply_changes


@st.cache_data(max_entries=128, show_spinner=False)
def layout_svg(dot: str) -> str | None:
    return dot_to_svg(dot)


def counts_row(pipe: Pipeline, stage: str) -> None:
    r = pipe.results[stage]
    if r.graph is None:
        return
    c = r.graph.kind_counts()
    d = stage_diff(pipe, "delegate", "edge") if stage in ("delegate", "fuse", "emit") else None
    cols = st.columns(6)
    cols[0].metric("nodes", len(r.graph.nodes))
    cols[1].metric("quantize", c.get("quantize", 0))
    cols[2].metric("dequantize", c.get("dequantize", 0))
    cols[3].metric("patterns", len(r.graph.patterns))
    cols[4].metric("delegated ops", len(d.delegated) if d else 0)
    cols[5].metric("fused ops", c.get("quantized_op", 0))


def error_panel(pipe: Pipeline, stage: str) -> None:
    """The failure: message and hint, a button applying the hint's config change (``err.fix``), the failing
    node, the chained causes and the libraries' log lines; the traceback only in the collapsed details."""
    err = pipe.results[stage].error
    st.error(f"**Stage '{stage}' failed: {err.message}**\n\nHint: {err.hint}", icon="🛑")
    if err.fix:
        try:
            flags = config_flags(pipe.config.with_changes(**err.fix), base=pipe.config)
        except (ConfigError, TypeError):  # a fix naming no valid config: offer no button
            flags = ""
        if flags:
            st.button(f"Apply: {flags}", on_click=apply_changes, args=(dict(err.fix),), type="primary",
                      key="apply_fix_button", help="change the sidebar options as the hint says and run again")
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
        st.code("\n".join(err.log), language="text")
    if err.metrics:
        st.dataframe(pd.DataFrame([err.metrics]), hide_index=True)
    with st.expander("details"):
        st.code(err.details or "(no details)", language="text")


def view_controls(pipe: Pipeline, stage: str, model_ref: str = "") -> ViewSpec:
    """View options: they change only the drawing, never the pipeline."""
    graph = pipe.results[stage].graph
    with st.expander("View", expanded=False):
        c = st.columns(5)
        depth = c[0].selectbox("Collapse by module", ["auto", "full detail", 1, 2, 3, 4, 5, 6], key="v_depth")
        quant_only = c[1].toggle("Quantization nodes only", key="v_quant")
        show_params = c[2].toggle("Show weights", value=True, key="v_params")
        search = c[3].text_input("Search (regex)", key="v_search")
        hops = c[4].number_input("Focus hops", 1, 6, 2, key="v_hops")
        c2 = st.columns(3)
        focus = c2[0].toggle("Focus on the selected node", key="v_focus")
        delegates = [n.id for n in graph.nodes if n.kind == "delegate"]
        expand = c2[1].toggle("Expand delegates", key="v_expand_delegates", disabled=not delegates)
        patterns = c2[2].toggle("Pattern clusters", value=True, key="v_patterns")
        st.toggle("Fit graph to the pane's width", value=True, key="v_fit",
                  help="off: full size, scroll to move around")
        overlay = sqnr_overlay(pipe, model_ref) if stage == "convert" else ()
        by_sqnr = st.toggle("Colour by SQNR (float vs reference)", key="v_sqnr", disabled=not overlay,
                            help="per-node numerics from the run page's 'Compare node by node'" if overlay else
                            "compute 'Compare node by node' on the run page first (convert stage only)")
    selected = st.session_state.get("selected_node")
    spec = ViewSpec(
        collapse_depth=None if depth == "auto" else (None if depth == "full detail" else int(depth)),
        max_nodes=10**9 if depth == "full detail" else 300,
        expanded=tuple(st.session_state.get("expanded_modules", ())),
        focus=selected if focus and selected else None, hops=int(hops), quant_only=quant_only,
        search=search or None, show_patterns=patterns, show_params=show_params,
        expand_delegates=tuple(delegates) if expand else (), highlight=(selected,) if selected else (),
        overlay=overlay if by_sqnr else (), overlay_label="SQNR dB" if by_sqnr else "")
    return stage_view(pipe, stage, spec)


def diff_section(pipe: Pipeline, stage: str) -> tuple[GraphDiff | None, bool]:
    """The diff against the chosen earlier stage (shown as a summary), and whether to draw it."""
    earlier = [s for s in STAGES[: STAGES.index(stage)] if pipe.results.get(s) and pipe.results[s].graph]
    if not earlier:
        return None, False
    default = previous_graph_stage(pipe, stage)
    c = st.columns([2, 1])
    against = c[0].selectbox("Changes since", earlier, index=earlier.index(default), key=f"diff_against_{stage}")
    draw = c[1].toggle("Draw the diff", key=f"diff_draw_{stage}")
    d = diff_graphs(pipe.results[against].graph, pipe.results[stage].graph)
    st.info(f"Since **{against}**: {d.summary()}")
    return d, draw


def graph_panel(pipe: Pipeline, stage: str, spec: ViewSpec, d: GraphDiff | None, draw_diff: bool) -> None:
    graph = pipe.results[stage].graph
    if draw_diff and d is not None:
        against = d.before
        spec = replace(spec, added=tuple(d.added))
        before_spec = ViewSpec(removed=tuple(d.removed), max_nodes=spec.max_nodes)
        cols = st.columns(2)
        with cols[0]:
            st.caption(f"{against}: removed nodes dashed red")
            _draw(pipe.results[against].graph, before_spec, f"graph_before_{stage}")
        with cols[1]:
            st.caption(f"{stage}: added nodes outlined green")
            _draw(graph, spec, f"graph_{stage}")
        inspector(graph, st.session_state.get("selected_node"), dict(spec.notes))
        return
    if spec.overlay:
        worst = min(spec.overlay, key=lambda kv: kv[1])
        st.caption(f"Coloured by {spec.overlay_label} (float vs reference) on {len(spec.overlay)} nodes; "
                   f"worst: {worst[0]} at {worst[1]:.1f} dB.")
    left, right = st.columns([3, 1])
    with left:
        dot, svg = _draw(graph, spec, f"graph_{stage}")
    with right:
        inspector(graph, st.session_state.get("selected_node"), dict(spec.notes))
    with st.expander("Downloads for this stage"):
        stage_downloads(pipe, stage, dot, svg)


def _draw(graph, spec: ViewSpec, key: str) -> tuple[str, str | None]:
    plan = plan_view(graph, spec)
    dot = to_dot(graph, spec, plan)
    if plan.depth:
        st.caption(f"{len(graph.nodes)} nodes collapsed to {plan.visible_count} boxes (module depth {plan.depth}); "
                   "click a module box to expand it.")
    if spec.search:
        st.caption(f"search: {len(plan.matches)} match(es)")
    svg = layout_svg(dot) if dot_available() else None
    if svg is None:
        st.warning("graphviz's `dot` is not installed: showing DOT text (scripts/system_deps.sh installs it).")
        st.code(dot, language="dot")
        return dot, None
    clicked = graph_view(svg, key=key, selected=st.session_state.get("selected_node"),
                         fit=st.session_state.get("v_fit", True))
    if clicked:
        if clicked.startswith("module/"):
            expanded = list(st.session_state.get("expanded_modules", ()))
            st.session_state.expanded_modules = expanded + [clicked.removeprefix("module/")]
        else:
            st.session_state.selected_node = clicked
        st.rerun()
    return dot, svg


def stage_page(pipe: Pipeline, stage: str, model_ref: str) -> None:
    info = STAGE_BY_NAME[stage]
    st.subheader(f"{STAGES.index(stage) + 1}. {stage}")
    st.write(info.explanation)
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
    if stage == "run":
        numerics_panel(pipe, model_ref)
        st.markdown("#### Downloads")
        run_downloads(pipe, model_ref)
        return
    diff, draw = diff_section(pipe, stage)
    spec = view_controls(pipe, stage, model_ref)
    graph_panel(pipe, stage, spec, diff, draw)
    if stage in ("delegate", "fuse") and "fuse" in pipe.results and pipe.results["fuse"].ok:
        ledger_panel(pipe, model_ref)
