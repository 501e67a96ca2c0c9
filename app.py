"""quantviz in the browser. Layout only: everything shown comes from the quantviz library.

    make run      # opens http://127.0.0.1:8501 on sample:digits_cnn
"""
from __future__ import annotations

import os

import streamlit as st

from quantviz.config import FLOWS, FUSIONS, MODES, PARTITIONERS, STAGES, PipelineConfig
from quantviz.errors import LoadError
from quantviz.stages import STAGE_LIST

st.set_page_config(page_title="quantviz", layout="wide")


@st.cache_resource(show_spinner=False)
def run_pipeline(model_ref: str, config: PipelineConfig):
    """One pipeline per (model, config), kept across reruns and sessions."""
    from quantviz import Pipeline, load_model

    return Pipeline(load_model(model_ref), config).run()


def sidebar() -> tuple[str, PipelineConfig]:
    from sample_models import SAMPLES

    default = os.environ.get("QUANTVIZ_DEFAULT_MODEL", "sample:digits_cnn").removeprefix("sample:")
    with st.sidebar:
        st.header("Model")
        name = st.selectbox("Sample model", list(SAMPLES), index=list(SAMPLES).index(default),
                            format_func=lambda n: f"{n}: {SAMPLES[n]}")
        st.header("Flow")
        flow = st.radio("Flow", FLOWS, horizontal=True)
        mode = st.radio("Mode", MODES, horizontal=True)
        per_channel = st.checkbox("Per-channel weights")
        partitioner = st.selectbox("Partitioner", PARTITIONERS)
        fusion = st.selectbox("Fusion", [f for f in FUSIONS if f in ("none", "executorch")], index=1)
        skip = st.text_input("Skip modules (comma separated)", "")
        batches = st.number_input("Calibration batches", 1, 64, 8)
    config = PipelineConfig(flow=flow, mode=mode, per_channel=per_channel, partitioner=partitioner, fusion=fusion,
                            skip_modules=tuple(s.strip() for s in skip.split(",") if s.strip()),
                            calibration_batches=int(batches))
    return f"sample:{name}", config


def stage_page(pipe, stage: str) -> None:
    result = pipe.results.get(stage)
    desc = next(s.description for s in STAGE_LIST if s.name == stage)
    st.subheader(f"{STAGES.index(stage) + 1}. {stage}")
    st.caption(desc)
    if result is None:
        st.info("This stage has not run: an earlier stage failed.")
        return
    if not result.ok:
        st.error(f"**{result.error.message}**\n\nHint: {result.error.hint}")
        with st.expander("details"):
            st.code(result.error.details or "(none)")
        return
    if result.graph is not None:
        counts = result.graph.kind_counts()
        cols = st.columns(5)
        cols[0].metric("nodes", len(result.graph.nodes))
        cols[1].metric("quantize", counts.get("quantize", 0))
        cols[2].metric("dequantize", counts.get("dequantize", 0))
        cols[3].metric("patterns", len(result.graph.patterns))
        cols[4].metric("delegate calls", counts.get("delegate", 0))
    for note in result.notes:
        st.write("• " + note)
    if result.metrics and stage == "run":
        st.json(result.metrics)
    if result.calls:
        st.code("\n".join(result.calls), language="python")


def main() -> None:
    st.title("quantviz")
    model_ref, config = sidebar()
    try:
        with st.spinner("running the flow…"):
            pipe = run_pipeline(model_ref, config)
    except LoadError as exc:
        st.error(f"Could not load the model: {exc}")
        return
    ran = [s for s in STAGES if s in pipe.results]
    stage = st.radio("Stage", STAGES, horizontal=True, index=0, key="stage",
                     format_func=lambda s: s if s in ran else f"{s} ·")
    stage_page(pipe, stage)


main()
