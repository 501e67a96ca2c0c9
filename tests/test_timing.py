"""Timing with ETDump: events placed on patterns, delegate calls and portable kernels; the float side; the CLI."""
from __future__ import annotations

import json
import math

import pytest

from quantviz.graph.model import GraphView, NodeView, PatternInstance
from quantviz.timing.latency import latency_report
from quantviz.timing.measure import time_pipeline
from quantviz.timing.place import place_events, xnn_operator
from quantviz.timing.profile import Profile, Stat, TimedEvent


def _node(name: str, target: str, kind: str, module_path: str | None = None, sub: str = "d") -> NodeView:
    return NodeView(id=f"{sub}/{name}", name=name, op="call_function", target=target, kind=kind,
                    module_path=module_path)


def _synthetic() -> tuple[Profile, GraphView]:
    """One XNNPACK delegate holding dq -> conv -> q and dq -> linear -> q, as the runtime reports it: an inserted
    transpose, a Convert, a conv (1x1 run as Fully Connected by XNNPACK is still GEMM-like), a linear."""
    sub = GraphView("d", [
        _node("dq0", "quantized_decomposed.dequantize_per_tensor.default", "dequantize"),
        _node("conv", "aten.convolution.default", "float_op", "conv1"),
        _node("q0", "quantized_decomposed.quantize_per_tensor.default", "quantize"),
        _node("dq1", "quantized_decomposed.dequantize_per_tensor.default", "dequantize"),
        _node("fc", "aten.linear.default", "float_op", "fc"),
        _node("q1", "quantized_decomposed.quantize_per_tensor.default", "quantize")],
        patterns=[PatternInstance("p0", "convolution", ["convolution"], "d/conv", ["d/dq0"], "d/q0",
                                  ["d/dq0", "d/conv", "d/q0"], module_path="conv1"),
                  PatternInstance("p1", "linear", ["linear"], "d/fc", ["d/dq1"], "d/q1",
                                  ["d/dq1", "d/fc", "d/q1"], module_path="fc")])
    top = GraphView("fuse", [NodeView("x", "x", "placeholder", "x", "input"),
                             NodeView("call", "call", "call_function", "executorch_call_delegate", "delegate",
                                      subgraph="d", backend="XnnpackBackend")], subgraphs={"d": sub})
    ev = [TimedEvent("Convert (NC) #1", "delegated", Stat([0.01, 0.02])),
          TimedEvent("Transpose (ND, X8) #1", "delegated", Stat([0.02, 0.02])),
          TimedEvent("Convolution (NHWC, QS8) IGEMM #1", "delegated", Stat([0.5, 0.6])),
          TimedEvent("Fully Connected (NC, QS8, QC8W) GEMM #1", "delegated", Stat([0.2, 0.3])),
          TimedEvent("DELEGATE_CALL", "delegate_call", Stat([1.0, 1.2]))]
    return Profile(ev, 2, 0, 1, None, Stat([1.1, 1.3])), top


def test_xnn_operator_names():
    assert xnn_operator("Convolution (NHWC, QS8) IGEMM #3") == "Convolution"
    assert xnn_operator("Fully Connected (NC, QS8, QC8W) GEMM #1") == "Fully Connected"
    assert xnn_operator("Static Reshape (NC) #2") == "Static Reshape"


def test_placement_by_kind_and_order_and_what_no_event_covers():
    profile, graph = _synthetic()
    placement = place_events(profile, graph)
    kinds = [(p.event.name.split(" ")[0], p.kind, p.pattern) for p in placement.delegates[0].inside]
    assert kinds == [("Convert", "delegate_qdq", None), ("Transpose", "delegate_layout", None),
                     ("Convolution", "pattern", "d/p0"), ("Fully", "pattern", "d/p1")]
    report = latency_report(profile, placement)
    d = report.delegates[0]
    assert d.events_sum.runs_ms == pytest.approx([0.73, 0.94])
    assert d.unaccounted.runs_ms == pytest.approx([0.27, 0.26])  # call minus the events, run by run
    assert d.converts == 1
    conv = report.pattern_time("d/p0")
    assert conv.time.median_ms == pytest.approx(0.55) and conv.module_path == "conv1"
    assert report.places[0].key == "d/p0"  # most time first
    overhead = next(p for p in report.places if p.kind == "runtime_overhead")
    assert overhead.time.runs_ms == pytest.approx([0.1, 0.1])  # Method::execute minus the delegate call
    data = report.to_dict()
    assert data["top"][0]["label"] == "dq → convolution → q (conv1)"
    assert data["by_kind"]["delegate_qdq"] == pytest.approx(0.015)


@pytest.fixture(scope="module")
def xnnpack_timing(flow):
    pipe = flow("sample:digits_cnn", flow="pt2e", backend="xnnpack")
    return pipe, time_pipeline(pipe, repeat=5)


def test_xnnpack_conv_linear_model_timed_per_pattern(xnnpack_timing):
    pipe, timing = xnnpack_timing
    report = timing.report
    assert report.profile.runs == 5 and report.profile.threads >= 1
    assert report.total.min_ms > 0
    events = [p.event for p in timing.placement.all()]
    assert events and all(v >= 0 for e in events for v in e.time.runs_ms)
    assert any(v > 0 for e in events for v in e.time.runs_ms)
    assert len(report.delegates) >= 1
    for d in report.delegates:
        assert d.call.min_ms > 0
        for inside, call in zip(d.events_sum.runs_ms, d.call.runs_ms):
            # the events are intervals inside the call; XNNPACK reports whole microseconds (1e-3 ms) per event
            assert inside <= call + 1e-3 * d.events
    labels = {p.label for p in report.of_kind("pattern")}
    assert any("convolution" in label and "conv1" in label for label in labels), labels
    assert any("linear" in label and "fc" in label for label in labels), labels
    # the float model lowered to XNNPACK too: every conv/linear pattern has its float time
    assert report.float_total is not None and report.float_total.min_ms > 0, timing.float_error
    conv_rows = [r for r in report.float_rows if "convolution" in r.label]
    assert conv_rows and all(r.float is not None and math.isfinite(r.speedup) for r in conv_rows)


def test_portable_kernels_placed_through_debug_handles(flow):
    pipe = flow("sample:conv_add", flow="pt2e")
    report = time_pipeline(pipe, repeat=3, with_float=False).report
    assert not report.delegates
    patterns = report.of_kind("pattern")
    convs = [p for p in patterns if "convolution" in p.label]
    assert {p.module_path for p in convs} == {"conv1", "conv2"}
    add = next(p for p in patterns if "add" in p.label)
    assert all(c.time.median_ms > add.time.median_ms for c in convs)  # a 3x3 conv costs more than an add
    # every kernel of a pattern (dq, conv, q) is summed into it
    assert all(any(e.startswith("native_call_dequantize") for e in c.events) for c in convs)
    # run by run, the places add up to Method::execute: every kernel counted once, plus what lies between them
    for i, total in enumerate(report.total.runs_ms):
        assert sum(p.time.runs_ms[i] for p in report.places) == pytest.approx(total, abs=1e-6)
    overhead = next(p for p in report.places if p.kind == "runtime_overhead")
    assert 0 <= overhead.time.median_ms < report.total.median_ms


def test_run_writes_latency_and_etrecord(tmp_path):
    from quantviz.cli import main

    assert main(["run", "sample:conv_add", "--flow", "pt2e", "--out", str(tmp_path), "--no-svg", "--repeat", "3",
                 "--no-float-timing"]) == 0
    latency = json.loads((tmp_path / "summary.json").read_text())["latency"]
    assert latency["available"] and latency["measured"]["runs"] == 3
    assert latency["total"]["median_ms"] > 0
    assert any("convolution" in p["label"] and p["median_ms"] > 0 for p in latency["patterns"])
    assert len(latency["top"]) <= 10
    assert (tmp_path / "etrecord.bin").stat().st_size > 0 and (tmp_path / "inputs.pt").is_file()
    assert json.loads((tmp_path / "latency.json").read_text())["total"]["runs"] == 3
    assert "ms 0." in (tmp_path / "stages" / "08_fuse.latency.dot").read_text()  # the overlay's labels


def test_ledger_row_of_a_refused_pattern_shows_its_measured_cost(flow):
    """XNNPACK has no config for layer_norm: its pattern stays in the portable runtime as dq -> layer_norm -> q, and
    its ledger row carries what those kernels took and their share of the run."""
    from quantviz.timing.ledger_costs import attach_costs
    from quantviz.why.ledger import build_ledger

    pipe = flow("sample:tiny_transformer", flow="pt2e", backend="xnnpack")
    timing = time_pipeline(pipe, repeat=5, with_float=False)
    ledger = build_ledger(pipe)
    assert attach_costs(ledger, timing) > 0
    refused = next(r for r in ledger.rows if r.op == "layer_norm")
    assert refused.fate == "unfused" and "no config for native_layer_norm" in refused.reason
    place = next(p for p in timing.report.places if refused.node in p.nodes)  # the kernel run on its anchor
    assert refused.cost_ms == pytest.approx(place.time.median_ms, abs=1e-5) and refused.cost_ms > 0
    assert 0 < refused.cost_share < 1
    assert any(e.startswith("native_call_native_layer_norm") for e in place.events)
    assert f"{refused.cost_share:.1%} of the run" in ledger.table()


def test_latency_overlay_colours_the_lowered_graph_and_renders(flow):
    """The portable conv_add program: each kernel's node carries its ms; the slowest (a convolution) is red; the
    drawing is kept as tests/artifacts/latency_overlay.png."""
    import shutil
    import subprocess
    from pathlib import Path

    from quantviz.render.dot import to_dot
    from quantviz.render.palette import overlay_colour
    from quantviz.timing.overlay import latency_overlay, latency_view

    pipe = flow("sample:conv_add", flow="pt2e")
    timing = time_pipeline(pipe, repeat=3, with_float=False)
    graph = pipe.results[pipe.role("lowered")].graph
    values = latency_overlay(timing)
    assert values and set(values) <= {n.id for n in graph.nodes}
    slowest = max(values, key=values.get)
    assert graph.node(slowest).target == "aten.convolution.default"
    dot = to_dot(graph, latency_view(timing))
    lo, hi = min(values.values()), max(values.values())
    assert overlay_colour(lo, lo, hi) in dot  # the slowest node gets the low (red) end
    assert f"ms {values[slowest]:.3f}" in dot
    if shutil.which("dot") is None:
        import os
        if os.environ.get("CI") == "true":
            pytest.fail("graphviz `dot` is missing")
        pytest.skip("graphviz `dot` is not installed")
    png = Path(__file__).parent / "artifacts" / "latency_overlay.png"
    png.parent.mkdir(exist_ok=True)
    subprocess.run(["dot", "-Tpng", "-o", str(png)], input=dot.encode(), check=True, timeout=60)
    assert png.stat().st_size > 5_000


def test_backends_row_and_sweep_cell_carry_the_latency(flow):
    """`quantviz backends` and `quantviz sweep` give each row/cell the .pte's median ms where a runtime runs it."""
    from quantviz.backend_table import row_of, table_lines
    from quantviz.sweep.cell import CellResult, _measure
    from quantviz.sweep.results import heatmap_html
    from quantviz.sweep.ray_runner import Sweep

    pipe = flow("sample:digits_cnn", flow="pt2e", backend="xnnpack")
    row = row_of(pipe, "sample:digits_cnn", 1.0)
    assert row.latency_ms is not None and row.latency_ms > 0 and "warm runs" in row.latency_spread
    assert table_lines([row])[2].endswith(f"| {row.latency_ms:.3f} |")
    cell = CellResult("c000", "sample:digits_cnn", pipe.config.to_dict(), "pt2e")
    _measure(pipe, cell)
    assert cell.ok and cell.latency_ms > 0
    assert f"{cell.latency_ms:.3f} ms" in heatmap_html(Sweep([cell], {"engine": "ray"}))
