"""The run page's latency (the records summary.json's ``latency`` holds) and the lowered graph's latency overlay,
through streamlit.testing's AppTest on sample:digits_cnn (fx flow, XNNPACK)."""
import os

import pytest
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.e2e
APP = os.path.join(os.path.dirname(__file__), "..", "app.py")


def test_run_page_shows_the_latency_table_and_the_lowered_graph_its_overlay():
    os.environ["QUANTVIZ_DEFAULT_MODEL"] = "sample:digits_cnn"
    at = AppTest.from_file(APP, default_timeout=600)
    at.run()
    at.session_state.stage = "run"
    at.run()
    assert not at.exception, at.exception
    assert "quantized ms (median)" not in {m.label for m in at.metric}  # nothing timed before the button
    at.number_input(key="latency_repeat").set_value(3)
    at.button(key="latency_button").click().run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    quantized, fl = float(metrics["quantized ms (median)"]), float(metrics["float ms (median)"])
    assert 0 < quantized < 1000 and 0 < fl < 1000
    assert float(metrics["speed-up vs float"].removesuffix("x")) == pytest.approx(fl / quantized, rel=0.02)
    top = at.dataframe[0].value
    assert 0 < len(top) <= 10 and list(top.columns[:3]) == ["place", "where", "median ms"]
    assert (top["median ms"] >= 0).all() and top["median ms"].max() > 0
    assert list(top["median ms"]) == sorted(top["median ms"], reverse=True)  # most time first
    assert any("conv" in p for p in top["place"])  # digits_cnn's convolutions are placed on its patterns
    caption = " ".join(c.value for c in at.caption)
    assert "3 warm runs (2 dropped)" in caption and "threads" in caption and "cores" in caption

    at.session_state.stage = "fuse"  # the fx flow's lowered stage
    at.run()
    at.toggle(key="v_latency").set_value(True).run()
    assert not at.exception, at.exception
    assert any("Coloured by median ms" in c.value for c in at.caption)
