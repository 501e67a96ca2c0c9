"""The run page's numerics: end to end at four levels, per node (worst first), per kernel instance,
sensitivity; and the SQNR overlay the convert stage's graph can be coloured by. The work is quantviz's
``numerics.compare``; this module only lays it out and caches it per pipeline."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from quantviz import Pipeline
from quantviz.numerics.compare import NumericsReport, compare


@st.cache_resource(show_spinner=False, max_entries=16)
def numerics_report(key: str, sensitivity_layers: int, _pipe: Pipeline) -> NumericsReport:
    """Cached per (model, config) key and sensitivity depth; ``_pipe`` is the pipeline that key names."""
    bar = st.progress(0.0, text="numerics")
    report = compare(_pipe, sensitivity_layers=sensitivity_layers,
                     progress=lambda f, t: bar.progress(min(max(f, 0.0), 1.0), text=t))
    bar.empty()
    return report


def report_key(pipe: Pipeline, model_ref: str) -> str:
    return model_ref + json.dumps(pipe.config.to_dict(), sort_keys=True)


def current_report(pipe: Pipeline, model_ref: str) -> NumericsReport | None:
    """The report computed for this pipeline in this session, if any (for the graph overlay)."""
    done = st.session_state.get("numerics_done", {})
    key = report_key(pipe, model_ref)
    if key not in done:
        return None
    return numerics_report(key, done[key], pipe)


def sqnr_overlay(pipe: Pipeline, model_ref: str) -> tuple[tuple[str, float], ...]:
    report = current_report(pipe, model_ref)
    if report is None:
        return ()
    return tuple((r["node"], float(r["sqnr_db"])) for r in report.per_node
                 if isinstance(r.get("sqnr_db"), (int, float)) and r["sqnr_db"] == r["sqnr_db"])


def numerics_panel(pipe: Pipeline, model_ref: str) -> None:
    st.markdown("#### Numerics (float, reference quantized model, ExecuTorch runtime)")
    n = pipe.numerics()
    if "float_accuracy" in n:
        c = st.columns(2)
        c[0].metric("float accuracy", f"{n['float_accuracy']:.2%}")
        c[1].metric("int8 runtime accuracy", f"{n['runtime_accuracy']:.2%}",
                    delta=f"{(n['runtime_accuracy'] - n['float_accuracy']) * 100:+.2f} pts")
    st.dataframe(pd.DataFrame([{"metric": k, "value": v} for k, v in n.items()]), hide_index=True)

    st.markdown("#### Node by node")
    key = report_key(pipe, model_ref)
    done = st.session_state.setdefault("numerics_done", {})
    c = st.columns([1, 1, 2])
    layers = c[0].number_input("Sensitivity: layers to try float", 0, 64, 0, key="sensitivity_layers",
                               help="each layer kept float in turn, the rest quantized (one convert run each)")
    if c[1].button("Compare node by node", type="primary", key="numerics_button"):
        done[key] = int(layers)
    if key not in done:
        c[2].caption("Four levels (float, reference, fused ahead of time, runtime), every quantized op against the "
                     "float model, every quantviz kernel instance against its reference.")
        return
    report = numerics_report(key, done[key], pipe)
    show_report(report)


def show_report(report: NumericsReport) -> None:
    frames = report.frames()
    st.dataframe(pd.DataFrame([{"level": k, "status": v} for k, v in report.levels.items()]), hide_index=True)
    st.markdown("**End to end** (every pair of levels)")
    st.dataframe(frames["end_to_end"], hide_index=True)
    if not frames["accuracy"].empty:
        st.dataframe(frames["accuracy"], hide_index=True)
    st.markdown("**Per node: float vs reference, worst first** — colour the convert graph by this SQNR with "
                "*Colour by SQNR* in its View options.")
    st.dataframe(frames["per_node"], hide_index=True)
    st.markdown(f"**quantviz kernel instances vs reference** — {report.kernels_note}")
    if not frames["kernels"].empty:
        st.dataframe(frames["kernels"], hide_index=True)
    st.markdown(f"**Runtime intermediates** — {report.runtime_intermediates.get('reason', '')}")
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
