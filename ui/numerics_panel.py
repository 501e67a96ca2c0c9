"""The run page's numerics: charts (SQNR per node along execution order, LSB histograms per kernel op,
sensitivity, accuracy: `quantviz.render.charts` specs drawn by `st.vega_lite_chart`), end to end at four levels,
per node (worst first), per kernel instance, sensitivity; and the SQNR overlay a stage's graph can be coloured
by (every stage once the blame table exists, else the convert stage's float-vs-reference per node). The work is
quantviz's ``numerics.compare``; this module only lays it out and caches it per pipeline."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from quantviz import Pipeline
from quantviz.measure.readable import accuracy_label, readable_numerics
from quantviz.numerics.blame import BlameRow, blame_by_stage
from quantviz.numerics.compare import NumericsReport, compare
from quantviz.process_run import RemotePipeline, on_worker
from quantviz.render.charts import Chart, blame_overlay, execution_order, pair_label, report_charts, vega_lite
from ui.state import BLAME_BY_STAGE, NUMERICS_DONE, for_run, run_key, set_for_run


@st.cache_resource(show_spinner=False, max_entries=16)
def numerics_report(key: str, sensitivity_layers: int, _pipe: Pipeline) -> NumericsReport:
    """Cached per (model, config) key and sensitivity depth; ``_pipe`` is the pipeline that key names (a worker's:
    computed by that worker)."""
    where = " (in this run's worker process)" if isinstance(_pipe, RemotePipeline) else ""
    bar = st.progress(0.0, text=f"numerics{where}: starting")
    report = on_worker(_pipe, compare, sensitivity_layers=sensitivity_layers,
                       progress=lambda f, t: bar.progress(min(max(f, 0.0), 1.0), text=t + where))
    bar.empty()
    return report


def current_report(pipe: Pipeline, model_ref: str) -> NumericsReport | None:
    """The report computed for this pipeline in this session, if any (for the graph overlay and the HTML report)."""
    key = run_key(model_ref, pipe.config)
    layers = for_run(NUMERICS_DONE, key)
    return None if layers is None else numerics_report(key, layers, pipe)


def report_for(pipe: Pipeline, model_ref: str) -> NumericsReport:
    """The report the page computed for this pipeline, else one computed now through the same cache (no
    sensitivity): what the HTML report charts, so the numerics never run twice for one run.

        build_report(pipe, report_for(pipe, "sample:digits_cnn"))
    """
    return current_report(pipe, model_ref) or numerics_report(run_key(model_ref, pipe.config), 0, pipe)


def stage_blame(pipe: Pipeline, report: NumericsReport, stage: str) -> dict[str, BlameRow]:
    """The blame rows of ``stage``'s graph, node id → row (empty before the blame table exists)."""
    rows = report.blame
    if not rows:
        return {}
    cache = st.session_state[BLAME_BY_STAGE]
    if id(report) not in cache:
        cache.clear()  # one report at a time: the current pipeline's
        cache[id(report)] = blame_by_stage(pipe, rows)
    return cache[id(report)].get(stage, {})


def sqnr_overlay(pipe: Pipeline, model_ref: str, stage: str = "convert") -> tuple[tuple[str, float], ...]:
    """(node id, SQNR dB) to colour ``stage``'s graph: the blame table's level pair for that stage
    (`overlay_pair`), else, on the flow's reference stage, float vs reference per node; () before "Compare node by
    node".

        sqnr_overlay(pipe, "sample:digits_cnn", "fuse")
    """
    report = current_report(pipe, model_ref)
    if report is None:
        return ()
    blamed = stage_blame(pipe, report, stage)
    if blamed:
        return blame_overlay(blamed, pipe.stage(stage).overlay)
    if stage != pipe.role("reference"):  # per node: float vs the reference model's nodes
        return ()
    return tuple((r.node, float(r.sqnr_db)) for r in report.per_node if r.sqnr_db == r.sqnr_db)


def overlay_pair(pipe: Pipeline, model_ref: str, stage: str = "convert") -> str:
    """The level pair ``sqnr_overlay`` shows for ``stage`` (its record's ``Stage.overlay``):
    ``overlay_pair(pipe, ref, "fuse") -> "reference → fused"`` with blame rows, "float → reference" without."""
    report = current_report(pipe, model_ref)
    blamed = report is not None and stage_blame(pipe, report, stage)
    return pair_label(pipe.stage(stage).overlay if blamed else "float_vs_reference_sqnr_db")


def numerics_panel(pipe: Pipeline, model_ref: str) -> None:
    st.markdown("#### Numerics (float, reference quantized model, ExecuTorch runtime)")
    n = pipe.numerics()
    precision = pipe.flow.precision(pipe.config)  # the dtypes the flow computes in: the levels a figure is judged by
    if n.float_accuracy is not None and n.runtime_accuracy is not None:
        c = st.columns(2)
        c[0].metric("float accuracy", f"{n.float_accuracy:.2%}")
        c[1].metric(accuracy_label(precision), f"{n.runtime_accuracy:.2%}",
                    delta=f"{(n.runtime_accuracy - n.float_accuracy) * 100:+.2f} pts")
    rows = readable_numerics(n, precision)
    if rows:  # labels with units; accuracy is above, once; summary.json keeps the raw keys. A table: cells wrap
        st.table(pd.DataFrame([{"measure": r.label, "value": r.value, "how to read it": r.meaning}
                               for r in rows]).set_index("measure"))
    methods_table(pipe)

    st.markdown("#### Node by node")
    key = run_key(model_ref, pipe.config)
    c = st.columns([1, 1, 2])
    layers = c[0].number_input("Sensitivity: layers to try float", 0, 64, 0, key="sensitivity_layers",
                               help="each layer kept float in turn, the rest quantized (one convert run each)")
    if c[1].button("Compare node by node", type="primary", key="numerics_button"):
        set_for_run(NUMERICS_DONE, key, int(layers))
    if for_run(NUMERICS_DONE, key) is None:
        c[2].caption("Four levels (float, reference, fused ahead of time, runtime), every quantized op against the "
                     "float model, every quantviz kernel instance against its reference.")
        return
    report = numerics_report(key, for_run(NUMERICS_DONE, key), pipe)
    convert = pipe.results.get("convert")
    show_report(report, execution_order(convert.graph) if convert is not None and convert.ok else {})


def methods_table(pipe: Pipeline) -> None:
    """A model shipped with more methods in one .pte (forward, decode): each one's batches and SQNR, a row each;
    nothing for one-method models."""
    methods = pipe.runtime_methods()
    if not methods:
        return
    st.markdown(f"#### Methods in the .pte ({len(methods)})")
    st.table(pd.DataFrame([{"method": m.name, "batches": len(m.input_shapes),
                            "input shapes": "; ".join(" ".join(str(s) for s in b) for b in m.input_shapes),
                            "float vs runtime SQNR (dB)": f"{m.float_vs_runtime_sqnr_db:.1f}",
                            "reference vs runtime SQNR (dB)": f"{m.reference_vs_runtime_sqnr_db:.1f}"}
                           for m in methods]).set_index("method"))


def show_chart(chart: Chart) -> None:
    """One chart, interactive (tooltips), drawn by Streamlit's own Vega (offline); its note below."""
    width = "content" if chart.kind == "histograms" else "stretch"  # small multiples keep their own size
    st.vega_lite_chart(spec=vega_lite(chart), width=width, key=f"chart_{chart.name}")
    st.caption(chart.note)


def show_charts(report: NumericsReport, order: dict[str, int]) -> None:
    """SQNR per node full width, the histograms below, sensitivity and accuracy side by side."""
    charts = {c.name: c for c in report_charts(report, order)}
    if not charts:
        return
    st.markdown("**Charts** — hover a point or bar for its numbers")
    for name in ("sqnr_by_node", "lsb_histograms"):
        if name in charts:
            show_chart(charts[name])
    pair = [charts[n] for n in ("sensitivity_bars", "accuracy_bars") if n in charts]
    for col, chart in zip(st.columns(2) if len(pair) == 2 else [st.container()], pair):
        with col:
            show_chart(chart)


def show_report(report: NumericsReport, order: dict[str, int] | None = None) -> None:
    """Charts, then the tables; ``order`` (node id → execution position) places per-node rows without blame."""
    show_charts(report, order or {})
    frames = report.frames()
    st.dataframe(pd.DataFrame([{"level": k, "status": v.text} for k, v in report.levels.items()]), hide_index=True)
    st.markdown("**End to end** (every pair of levels)")
    st.dataframe(frames["end_to_end"], hide_index=True)
    if not frames["accuracy"].empty:
        st.dataframe(frames["accuracy"], hide_index=True)
    if "blame" in frames and not frames["blame"].empty:
        st.markdown(f"**Blame: each level's error at each quantized pattern** — {report.blame_note} "
                    "*Colour by SQNR* in a stage's View options colours its graph by the level pair that stage "
                    "computes.")
        if report.taps is not None:
            st.caption("Inside delegates (intermediate-output taps): " + report.taps.summary())
        st.dataframe(frames["blame"], hide_index=True)
    st.markdown("**Per node: float vs reference, worst first** — without the blame table, *Colour by SQNR* "
                "colours the convert graph by this SQNR.")
    st.dataframe(frames["per_node"], hide_index=True)
    st.markdown(f"**quantviz kernel instances vs reference** — {report.kernels_note}")
    if not frames["kernels"].empty:
        st.dataframe(frames["kernels"], hide_index=True)
    st.markdown(f"**Runtime intermediates** — {report.runtime_intermediates.reason}")
    if not frames["runtime_intermediates"].empty:
        st.dataframe(frames["runtime_intermediates"], hide_index=True)
    if not frames["sensitivity"].empty:
        st.markdown("**Sensitivity** (gain when the layer stays float)")
        st.dataframe(frames["sensitivity"], hide_index=True)
    st.download_button("numerics.json", json.dumps(report.to_dict(), indent=2), "numerics.json",
                       mime="application/json", key="dl_numerics_json")
    cols = st.columns(len(frames))
    for col, (name, frame) in zip(cols, frames.items()):
        col.download_button(f"{name}.csv", frame.to_csv(index=False), f"{name}.csv", mime="text/csv",
                            key=f"dl_numerics_{name}")
