"""Charts of a numerics report as data (`quantviz.render.charts`): the values each chart plots, the first
divergence mark, histogram bins, the Vega-Lite specs the app draws and the SVG the report inlines (no network).
The tables are built by hand here (the report's own records), so these tests need no pipeline."""
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from quantviz.config import PipelineConfig
from quantviz.numerics.blame import BlameRow
from quantviz.numerics.compare import LEVEL_OK, NumericsReport
from quantviz.numerics.kernel_instances import KernelInstance
from quantviz.numerics.per_node import PerNodeRow
from quantviz.numerics.sensitivity import SensitivityRow
from quantviz.render import charts as C
from quantviz.report import charts_section
from quantviz_devtools.tools import require_module

NODES = ["conv1", "relu1", "conv2", "relu2", "fc"]
NAN = float("nan")


def blame_rows() -> list[BlameRow]:
    """Five nodes, out of order on purpose; relu2 (order 8) is the first divergence; fc has no runtime value."""
    rows = []
    for i, node in enumerate(NODES):
        rows.append(BlameRow(node, f"p{i}", node, "conv2d" if node.startswith("conv") else "relu", 2 * i + 2,
                             float_vs_reference_sqnr_db=40.0 - i,
                             reference_vs_fused_sqnr_db=math.inf if i < 3 else 30.0 - i,
                             fused_vs_runtime_sqnr_db=NAN if node == "fc" else math.inf,
                             reference_max_lsb=0, fused_max_lsb=0, runtime_max_lsb=1, runtime_local_max_lsb=1,
                             runtime_source="intermediate", first_divergence=node == "relu2"))
    return rows[::-1]


def per_node_row(node: str, db: float) -> PerNodeRow:
    return PerNodeRow(node, "aten.conv2d.default", f"quantize_{node}", node, "same name", 0.05, sqnr_db=db)


KERNELS = [KernelInstance("c1", "conv2d", 100, 1, histogram={"0": 90, "1": 10}),
           KernelInstance("c2", "conv2d", 60, 2, histogram={"0": 50, "2": 5, "1": 5}),
           KernelInstance("l1", "linear", 64, 9, histogram={">=8": 4, "0": 50, "1": 10})]
SENSITIVITY = [SensitivityRow("conv1", 30.0, 1.5), SensitivityRow("fc", 33.0, 4.25),
               SensitivityRow("conv2", 28.0, -0.25), SensitivityRow("broken", NAN, NAN, error="convert failed")]
ACCURACY = {"evaluation": {"runtime": 0.95, "float": 0.97, "fused": 0.96, "reference": 0.96},
            "calibration": {"float": 1.0}}


def make_report(blame: list[BlameRow] | None = None) -> NumericsReport:
    return NumericsReport("toy", PipelineConfig(), accuracy=ACCURACY, kernels=KERNELS, sensitivity=SENSITIVITY,
                          per_node=[per_node_row(n, 40.0 - i) for i, n in enumerate(NODES)], blame=blame or [])


# ------------------------------------------------------------------------------------------- SQNR per node


def test_sqnr_by_node_one_line_per_level_pair_in_execution_order():
    chart = C.sqnr_by_node(blame_rows())
    assert chart.series_names() == ["float → reference", "reference → fused", "fused → runtime"]
    f2r = chart.points("float → reference")
    assert [p["order"] for p in f2r] == [2, 4, 6, 8, 10] and [p["node"] for p in f2r] == NODES
    assert [p["sqnr_db"] for p in f2r] == [40.0, 39.0, 38.0, 37.0, 36.0]
    r2f = chart.points("reference → fused")
    assert [p["sqnr_db"] for p in r2f] == [50.0, 50.0, 50.0, 27.0, 26.0]  # identical: best finite (40) + 10 dB
    assert [p["identical"] for p in r2f] == [True, True, True, False, False]
    assert chart.identical_at == 50.0
    f2rt = chart.points("fused → runtime")
    assert [p["node"] for p in f2rt] == NODES[:4]  # fc has no runtime value: no point, not a zero
    assert r2f[0]["value"] == "identical (∞ dB)" and f2r[1]["value"] == "39.0 dB"


def test_first_divergence_is_marked_at_its_execution_order():
    chart = C.sqnr_by_node(blame_rows())
    assert chart.marks == [C.Mark(8, "relu2", "first divergence: relu2")]
    spec = C.vega_lite(chart)
    values = [{"x": 8, "node": "relu2", "label": "first divergence: relu2"}]
    rule_layers = [layer for layer in spec["layer"] if layer.get("data", {}).get("values") == values]
    assert len(rule_layers) == 1
    assert rule_layers[0]["layer"][0]["mark"]["type"] == "rule"
    assert rule_layers[0]["layer"][0]["encoding"]["x"]["field"] == "x"
    svg = C.to_svg(chart)
    assert re.findall(r"class='qv-divergence' data-x='(\d+)'", svg) == ["8"]
    assert "first divergence: relu2" in svg


def test_sqnr_svg_draws_every_point_of_every_line():
    svg = C.to_svg(C.sqnr_by_node(blame_rows()))
    groups = dict(re.findall(r"<g class='qv-series' data-series='([^']+)'>(.*?)</g>", svg))
    assert {k: v.count("<circle") for k, v in groups.items()} == {
        "float → reference": 5, "reference → fused": 5, "fused → runtime": 4}
    assert "identical (∞ dB)" in svg and "worst fc 36.0 dB" in svg


def test_sqnr_by_node_falls_back_to_per_node_in_execution_order():
    per_node = [per_node_row("fc", 20.0), per_node_row("conv1", 35.0), per_node_row("gone", 1.0),
                per_node_row("conv2", NAN)]
    chart = C.sqnr_by_node([], per_node, order={"conv1": 1, "conv2": 5, "fc": 9})
    assert chart.series_names() == ["float → reference"]
    assert [(p["order"], p["node"], p["sqnr_db"]) for p in chart.rows] == [(1, "conv1", 35.0), (9, "fc", 20.0)]
    assert chart.marks == [] and "no blame table" in chart.note
    assert C.sqnr_by_node([], per_node, order={}) is None


def test_execution_order_is_the_graph_position():
    graph = SimpleNamespace(nodes=[SimpleNamespace(id="x"), SimpleNamespace(id="conv1"), SimpleNamespace(id="out")])
    assert C.execution_order(graph) == {"x": 0, "conv1": 1, "out": 2}
    assert C.execution_order(None) == {}


# ------------------------------------------------------------------------------------------- histograms, bars


def test_lsb_histograms_sum_instances_per_op_in_bin_order():
    chart = C.lsb_histograms(KERNELS)
    assert chart.series_names() == ["conv2d", "linear"]
    assert [(p["lsb"], p["count"]) for p in chart.points("conv2d")] == [("0", 140), ("1", 15), ("2", 5)]
    assert [(p["lsb"], p["count"]) for p in chart.points("linear")] == [("0", 50), ("1", 10), (">=8", 4)]
    assert chart.points("conv2d")[0]["instances"] == 2 and chart.points("conv2d")[0]["share"] == 140 / 160
    svg = C.to_svg(chart)
    multiples = dict(re.findall(r"<g class='qv-small-multiple' data-op='(\w+)'>(.*?)</g>", svg))
    assert re.findall(r"data-lsb='([^']+)' data-count='(\d+)'", multiples["linear"]) == [
        ("0", "50"), ("1", "10"), ("&gt;=8", "4")]
    assert C.vega_lite(chart)["facet"]["field"] == "op"
    assert C.lsb_histograms([]) is None


def test_sensitivity_bars_largest_gain_first_errors_left_out():
    chart = C.sensitivity_bars(SENSITIVITY)
    assert [(r["layer"], r["gain_db"]) for r in chart.rows] == [("fc", 4.25), ("conv1", 1.5), ("conv2", -0.25)]
    svg = C.to_svg(chart)
    assert re.findall(r"data-label='(\w+)' data-value='([-\d.]+)'", svg) == [
        ("fc", "4.25"), ("conv1", "1.5"), ("conv2", "-0.25")]
    assert "+4.2" in svg and "-0.2" in svg


def test_accuracy_bars_levels_in_flow_order_per_data_set():
    chart = C.accuracy_bars(ACCURACY)
    assert [(r["data"], r["level"], r["accuracy"]) for r in chart.rows] == [
        ("evaluation", "float", 0.97), ("evaluation", "reference", 0.96), ("evaluation", "fused", 0.96),
        ("evaluation", "runtime", 0.95), ("calibration", "float", 1.0)]
    assert "95.00%" in C.to_svg(chart)
    assert C.accuracy_bars({}) is None


# ------------------------------------------------------------------------------------------- whole report


@pytest.mark.parametrize("blame", [None, []])
def test_report_charts_without_blame_use_per_node(blame):
    charts = C.report_charts(make_report(blame), order={n: i for i, n in enumerate(NODES)})
    assert [c.name for c in charts] == ["sqnr_by_node", "lsb_histograms", "sensitivity_bars", "accuracy_bars"]
    assert charts[0].series_names() == ["float → reference"] and len(charts[0].rows) == 5


def test_report_charts_with_blame_use_it():
    chart = C.report_charts(make_report(blame_rows()))[0]
    assert len(chart.series_names()) == 3 and chart.marks[0].x == 8


def test_vega_lite_specs_are_strict_json():
    for chart in C.report_charts(make_report(blame_rows())):
        spec = C.vega_lite(chart)
        text = json.dumps(spec, allow_nan=False)  # Streamlit sends it as JSON: no NaN or Infinity
        assert "http" not in text and spec["title"] == chart.title


def test_vega_lite_specs_validate_against_the_schema():
    alt = require_module("altair")  # installed with streamlit; it carries the Vega-Lite JSON schema
    for chart in C.report_charts(make_report(blame_rows())):
        spec = C.vega_lite(chart)
        kind = alt.FacetChart if "facet" in spec else alt.LayerChart
        kind.from_dict(spec)  # raises on an invalid spec


def test_charts_html_is_standalone():
    html = C.charts_html(C.report_charts(make_report(blame_rows())))
    assert html.count("<svg") == 4 and "<script" not in html
    assert not re.search(r"""(src|href)=["']?https?:""", html)
    assert set(re.findall(r"https?://[^'\"]+", html)) == {"http://www.w3.org/2000/svg"}  # xmlns only


def test_report_charts_section_with_a_given_report():
    pipe = SimpleNamespace(results={}, result_of=lambda role: None)  # nothing ran: no execution order
    section = charts_section(pipe, make_report(blame_rows()))
    assert section.startswith("<section id='charts'")
    assert re.findall(r"<figure class='chart' id='chart-(\w+)'>", section) == [
        "sqnr_by_node", "lsb_histograms", "sensitivity_bars", "accuracy_bars"]
    empty = NumericsReport("toy", PipelineConfig(), levels={"float": LEVEL_OK})
    assert "No numerics to chart" in charts_section(pipe, empty)


# ------------------------------------------------------------------------------------------- graph overlay


def test_blame_overlay_picks_the_stages_level_pair():
    rows = {r.node: r for r in blame_rows()}
    from quantviz.flows import FLOWS

    pair = {name: FLOWS["pt2e"].stage(name).overlay for name in ("trace", "convert", "fuse", "emit")}  # the records
    assert dict(C.blame_overlay(rows, pair["convert"])) == {n: 40.0 - i for i, n in enumerate(NODES)}
    fused = dict(C.blame_overlay(rows, pair["fuse"]))
    assert fused == {"conv1": 37.0, "relu1": 37.0, "conv2": 37.0, "relu2": 27.0, "fc": 26.0}  # inf → 27 + 10
    assert dict(C.blame_overlay(rows, pair["emit"])) == {n: C.ALL_IDENTICAL_DB for n in NODES[:4]}  # all identical
    assert C.pair_label(pair["fuse"]) == "reference → fused" and C.pair_label(pair["trace"]) == "float → reference"


@pytest.mark.parametrize("lo,hi", [(0, 47), (-0.3, 4.25), (0, 1), (12.5, 13.0), (3, 3)])
def test_nice_ticks_cover_the_range(lo, hi):
    ticks = C.nice_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi and len(ticks) >= 2
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1


def test_app_overlay_colours_any_stage_by_its_blame_pair(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))  # the app's ui package
    from ui import numerics_panel as panel
    from ui.state import BLAME_BY_STAGE

    rows = blame_rows()
    by_stage = {"convert": {r.node: r for r in rows}, "fuse": {"quantviz_conv2d": rows[0], "getitem": rows[1]}}
    calls = []
    monkeypatch.setattr(panel, "blame_by_stage", lambda pipe, r: calls.append(r) or by_stage)
    report = make_report(rows)
    monkeypatch.setattr(panel, "current_report", lambda pipe, ref: report)
    panel.st.session_state[BLAME_BY_STAGE] = {}  # as init_state() leaves it
    from types import SimpleNamespace

    from quantviz.flows import FLOWS

    pipe = SimpleNamespace(stage=FLOWS["pt2e"].stage, role=FLOWS["pt2e"].roles.get)  # the records and roles
    assert dict(panel.sqnr_overlay(pipe, "m", "fuse")) == {"quantviz_conv2d": 26.0, "getitem": 27.0}  # fc, relu2
    assert dict(panel.sqnr_overlay(pipe, "m")) == {n: 40.0 - i for i, n in enumerate(NODES)}  # convert: default
    assert panel.sqnr_overlay(pipe, "m", "trace") == ()  # no blame rows for that graph, and not the reference stage
    assert panel.overlay_pair(pipe, "m", "fuse") == "reference → fused"
    assert len(calls) == 1  # blame_by_stage once per report

    without = make_report()
    monkeypatch.setattr(panel, "current_report", lambda pipe, ref: without)
    assert dict(panel.sqnr_overlay(pipe, "m", "convert")) == {n: 40.0 - i for i, n in enumerate(NODES)}  # per node
    assert panel.sqnr_overlay(pipe, "m", "fuse") == ()
    assert panel.overlay_pair(None, "m", "fuse") == "float → reference"
