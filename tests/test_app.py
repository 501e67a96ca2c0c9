"""The Streamlit app through streamlit.testing.v1.AppTest: every stage page, errors, skip, downloads."""
import os
import re

import pytest
from streamlit.testing.v1 import AppTest

from quantviz.flows import FLOWS
STAGES = FLOWS["fx"].names  # the default flow's stages

pytestmark = pytest.mark.e2e
APP = os.path.join(os.path.dirname(__file__), "..", "app.py")


def app(model: str = "digits_cnn") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=600)
    os.environ["QUANTVIZ_DEFAULT_MODEL"] = f"sample:{model}"
    at.run()
    assert not at.exception, at.exception
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in [*at.markdown, *at.info, *at.caption, *at.error, *at.warning])


def test_opens_on_digits_with_the_trace_stage():
    at = app()
    assert at.subheader[0].value == "1. trace"
    assert "digits_cnn" in texts(at) and metric(at, "nodes") == "10"


def test_every_stage_page_shows_its_counts():
    at = app()
    expected_q = {"convert": "9", "capture": "12", "edge": "9", "fuse": "9"}
    for i, stage in enumerate(STAGES, 1):
        at.session_state.stage = stage
        at.run()
        assert not at.exception, at.exception
        assert at.subheader[0].value == f"{i}. {stage}"
        if stage in expected_q:
            assert metric(at, "quantize") == expected_q[stage]
            assert "Since **" in texts(at)  # the diff summary against the previous stage
        if stage == "run":
            assert metric(at, "float accuracy") == "98.70%"
            labels = {b.label for b in at.get("download_button")}
            assert {"model.pte", "summary.json", "stages CSV", "reproduce.py"} <= labels


def test_not_traceable_shows_the_error_offers_the_skip_and_then_reaches_run():
    at = app("not_traceable")
    at.sidebar.selectbox(key="sample").select("not_traceable").run()
    assert at.subheader[0].value == "1. trace"
    err = " ".join(e.value for e in at.error)
    assert "module 'pad' (PadToEven)" in err and "--skip-module pad" in err
    skip = next(b for b in at.button if b.label.startswith("Apply:"))
    assert "--skip-untraceable" in skip.label  # the error's structured fix, not a regex on the hint
    skip.click().run()
    assert at.session_state.skip_untraceable is True
    at.session_state.stage = "run"
    at.run()
    assert at.subheader[0].value == "10. run" and not at.error


def test_a_view_control_does_not_rerun_the_pipeline():
    from ui.runner import pipeline_store

    at = app()
    at.session_state.stage = "convert"
    at.run()
    before = dict(pipeline_store())
    at.toggle(key="v_quant").set_value(True).run()
    assert not at.exception
    assert pipeline_store() == before


def test_fuse_page_shows_the_ledger_and_a_what_if_changes_it():
    at = app("conv_add")
    at.sidebar.selectbox(key="sample").select("conv_add")
    at.sidebar.selectbox(key="flow").select("pt2e")
    at.run()
    at.session_state.stage = "fuse"
    at.run()
    assert not at.exception, at.exception
    assert metric(at, "unfused") == "3" and metric(at, "fused") == "0"
    at.session_state.selected_node = "aten_add_tensor"  # as a click on the add node would
    at.run()
    assert any("not fused: " in w.value and "graph has torch.int8" in w.value for w in at.warning)
    at.selectbox(key="whatif_change").select("skip the module").run()
    at.selectbox(key="whatif_module").select("conv1")
    next(b for b in at.button if b.label == "Try it").click().run()
    assert not at.exception, at.exception
    (changes, error, changed), = at.session_state.whatif_result.values()  # one run's what-if
    assert changes == {"skip_modules": ("conv1",)} and error is None
    assert [(c["label"], c["after"]) for c in changed] == [("dq → conv2d → q", "gone")]
    next(b for b in at.button if b.label == "Apply this change").click().run()
    assert at.session_state.skip_modules == "conv1"


def test_numerics_panel_compares_node_by_node_and_colours_the_convert_graph():
    at = app()
    at.session_state.stage = "run"
    at.run()
    next(b for b in at.button if b.label == "Compare node by node").click().run()
    assert not at.exception, at.exception
    frames = [d.value for d in at.dataframe]
    per_node = next(f for f in frames if "quantize_node" in f.columns)
    assert len(per_node) == 9 and per_node["sqnr_db"].is_monotonic_increasing  # worst first
    levels = next(f for f in frames if list(f.columns) == ["level", "status"])
    assert set(levels["level"]) == {"float", "reference", "fused", "runtime"}
    assert {"numerics.json", "per_node.csv"} <= {b.label for b in at.get("download_button")}
    at.session_state.stage = "convert"
    at.run()
    toggle = at.toggle(key="v_sqnr")
    assert not toggle.disabled
    toggle.set_value(True).run()
    assert not at.exception, at.exception
    # every member of each pattern takes its pattern's float -> reference SQNR (the blame table's convert pair)
    blame = next(f for f in frames if "float_vs_reference_sqnr_db" in f.columns)
    worst = blame["float_vs_reference_sqnr_db"].min()
    caption = re.search(r"Coloured by SQNR dB \(float → reference\) on (\d+) nodes; worst: (\S+) at ([-\d.]+) dB",
                        texts(at))
    assert caption, texts(at)
    assert float(caption.group(3)) == round(worst, 1)
    assert len(blame) == 8 and int(caption.group(1)) > len(blame)  # the members of 8 patterns


def test_fusion_selector_offers_quantviz_kernels():
    at = app()
    box = at.sidebar.selectbox(key="fusion")
    assert set(box.options) == {"none", "executorch", "quantviz", "both"}
    assert box.value == "executorch"  # the same default as the CLI
    box.select("quantviz").run()
    at.session_state.stage = "fuse"
    at.run()
    assert not at.exception, at.exception
    assert "quantviz patterns: 8 node group(s) replaced" in texts(at)  # fx digits_cnn (uint8), as the CLI shows


def download_labels(at: AppTest) -> set[str]:
    return {b.label for b in at.get("download_button")}


def test_a_config_change_does_not_offer_the_previous_configurations_report():
    at = app()
    at.session_state.stage = "run"
    at.run()
    next(b for b in at.button if b.label == "Build HTML report").click().run()
    assert not at.exception, at.exception
    assert "report.html" in download_labels(at)
    at.sidebar.selectbox(key="fusion").select("none").run()  # another configuration: fuse, emit and run again
    assert not at.exception, at.exception
    assert at.subheader[0].value == "10. run" and "`fusion none`" in texts(at)
    assert "report.html" not in download_labels(at)  # the report was the previous configuration's
    at.sidebar.selectbox(key="fusion").select("executorch").run()  # back: that configuration's report is kept
    assert "report.html" in download_labels(at)


def test_the_html_report_reuses_the_numerics_the_page_computed(monkeypatch):
    """The page's numerics are computed once (by the run's session worker) and the report is built from that same
    report: the worker is never asked to compare again."""
    import ui.downloads
    import ui.numerics_panel
    from quantviz.numerics.compare import NumericsReport, compare
    from quantviz.report import build_report

    compared, reported = [], []
    real = ui.numerics_panel.on_worker

    def counted(pipe, fn, *args, **kwargs):
        if fn is compare:
            compared.append(kwargs)
        if fn is build_report:
            reported.append(args[0])
        return real(pipe, fn, *args, **kwargs)

    for module in (ui.numerics_panel, ui.downloads):  # the page's numerics, and the report (its own fallback)
        monkeypatch.setattr(module, "on_worker", counted)
    ui.numerics_panel.numerics_report.clear()
    at = app()
    at.session_state.stage = "run"
    at.run()
    next(b for b in at.button if b.label == "Compare node by node").click().run()
    assert not at.exception, at.exception
    assert len(compared) == 1
    next(b for b in at.button if b.label == "Build HTML report").click().run()
    assert not at.exception, at.exception
    assert "report.html" in download_labels(at)
    assert len(compared) == 1  # the report charts the numerics the page computed: they ran once
    assert len(reported) == 1 and isinstance(reported[0], NumericsReport)  # given to the report: none computed there
