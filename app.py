"""quantviz in the browser: layout only; everything shown comes from the quantviz library.

    make run      # opens http://127.0.0.1:8501 on sample:digits_cnn
"""
from __future__ import annotations

import streamlit as st

from quantviz import LoadError, StageError
from quantviz.config import STAGES, ConfigError
from ui.runner import get_pipeline
from ui.sidebar import flow_config, model_choice
from ui.stage_page import stage_page

st.set_page_config(page_title="quantviz", layout="wide")
st.session_state.setdefault("stage", "trace")


def stage_rail(pipe) -> str:
    """The ten stages in order, with Back and Next; stages that have not run cannot be chosen."""
    ran = [s for s in STAGES if s in pipe.results]
    if st.session_state.stage not in ran:
        st.session_state.stage = ran[-1]  # the failed stage, or the last one that ran
    i = ran.index(st.session_state.stage)

    def go(stage: str | None) -> None:
        if stage:  # None: the current segment was clicked again
            st.session_state.stage = stage
            st.session_state.selected_node = None

    def label(s: str) -> str:
        r = pipe.results.get(s)
        return f"{STAGES.index(s) + 1} {s}" + ("" if r is None else (" ✓" if r.ok else " ✗"))

    cols = st.columns([1, 12, 1], vertical_alignment="center")
    cols[0].button("◀ Back", disabled=i == 0, key="back", on_click=go, args=(ran[max(0, i - 1)],))
    st.session_state.rail = st.session_state.stage  # keeps the control in step with Back/Next
    cols[1].segmented_control("Stage", ran, key="rail", format_func=label, label_visibility="collapsed",
                              on_change=lambda: go(st.session_state.rail))
    cols[2].button("Next ▶", disabled=i == len(ran) - 1, key="next", on_click=go,
                   args=(ran[min(len(ran) - 1, i + 1)],))
    if len(ran) < len(STAGES):
        st.caption("Not run: " + ", ".join(s for s in STAGES if s not in ran))
    return st.session_state.stage


def main() -> None:
    with st.sidebar:
        st.title("quantviz")
        choice = model_choice()
        try:
            config = flow_config()
        except ConfigError as exc:
            st.error(str(exc))
            return
    if choice is None:
        st.info("Choose a model in the sidebar.")
        return
    try:
        pipe = get_pipeline(choice.key, choice.loader, config)
    except (LoadError, StageError) as exc:
        st.error(f"Could not load the model: {exc}", icon="🛑")
        return
    st.markdown(f"**{pipe.spec.name}**: {pipe.spec.description or choice.ref} · flow `{config.flow}` · "
                f"mode `{config.mode}` · partitioner `{config.partitioner}` · fusion `{config.fusion}`")
    stage = stage_rail(pipe)
    stage_page(pipe, stage, choice.ref)


main()
