"""The sidebar and a backend's declared defaults (``Backend.defaults``): choosing a backend sets them on the options
the user did not set, as an Apply would, and says so; an option the user set is kept (``CONFIG_GIVEN``)."""
import os

import pytest

from quantviz import PipelineConfig

APP = os.path.join(os.path.dirname(__file__), "..", "app.py")


def test_the_sidebar_says_what_the_backend_needs_and_whether_the_run_differs_from_the_widgets():
    from ui.sidebar import backend_defaults_caption

    # the widgets still show fx (the backend was not chosen in this session): the pipeline applies pt2e, said so
    assert backend_defaults_caption(PipelineConfig(backend="xnnpack"), frozenset({"backend"})) == \
        "The xnnpack backend needs `--flow pt2e`: applied to the options you did not set (its record's defaults)."
    # the widgets hold the backend's values (set when it was chosen): said, nothing more applied
    assert backend_defaults_caption(PipelineConfig(flow="pt2e", backend="vulkan", per_channel=True),
                                    frozenset({"backend"})) == \
        "The vulkan backend needs `--flow pt2e --per-channel` (its record's defaults; an option you set yourself is kept)."
    assert backend_defaults_caption(PipelineConfig(flow="fx", backend="xnnpack"), frozenset({"backend", "flow"})) == ""
    assert backend_defaults_caption(PipelineConfig(flow="pt2e", backend="xnnpack"), frozenset()) == ""  # first screen
    assert backend_defaults_caption(PipelineConfig(flow="pt2e", backend="xnnpack"), frozenset({"flow"})) == ""


@pytest.mark.e2e
def test_choosing_xnnpack_sets_the_pt2e_flow_and_choosing_fx_afterwards_is_kept():
    from streamlit.testing.v1 import AppTest

    from ui.runner import pipeline_store

    os.environ["QUANTVIZ_DEFAULT_MODEL"] = "sample:digits_cnn"
    at = AppTest.from_file(APP, default_timeout=600).run()  # QUANTVIZ_DEFAULT_FLOW=fx (conftest): fx + portable
    assert not at.exception, at.exception
    assert at.sidebar.selectbox(key="flow").value == "fx"
    at.sidebar.selectbox(key="backend").select("xnnpack").run()
    assert not at.exception, at.exception
    assert at.sidebar.selectbox(key="flow").value == "pt2e"  # set on the widget, as an Apply would
    assert "The xnnpack backend needs `--flow pt2e`" in " ".join(c.value for c in at.sidebar.caption)
    assert at.session_state.config_given == {"backend"}
    runs = {c for (_, c) in pipeline_store()}
    assert PipelineConfig(flow="pt2e", backend="xnnpack") in runs
    at.sidebar.selectbox(key="flow").select("fx").run()  # the user's own choice: kept, though XNNPACK declares pt2e
    assert not at.exception, at.exception
    assert at.sidebar.selectbox(key="flow").value == "fx" and at.session_state.config_given == {"backend", "flow"}
    assert not any("backend needs" in c.value for c in at.sidebar.caption)
    assert PipelineConfig(flow="fx", backend="xnnpack") in {c for (_, c) in pipeline_store()}
    assert "`flow fx`" in " ".join(m.value for m in at.markdown)  # the page names the flow that runs
