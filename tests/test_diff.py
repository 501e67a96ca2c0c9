"""Stage-to-stage diffs matched by provenance. Every test diffs graphs of a real pipeline run: all e2e."""
import pytest

from quantviz.graph.diff import diff_graphs
from quantviz.stage_views import stage_diff

pytestmark = pytest.mark.e2e


def test_capture_to_delegate_on_mobilenet_counts_delegated_nodes_and_lists_those_outside(flow):
    pipe = flow("sample:mobilenet_v2", flow="pt2e", partitioner="xnnpack")
    capture, delegate = pipe.results["capture"].graph, pipe.results["delegate"].graph
    d = diff_graphs(capture, delegate)
    # XNNPACK takes the whole network: every capture op (conv, add, q, dq...) went into a delegate
    ops = {n.id for n in capture.nodes if n.kind not in ("input", "parameter", "output")}
    assert set(d.delegated) == ops and len(ops) > 100
    assert len(d.delegate_calls) == delegate.kind_counts()["delegate"]
    assert d.summary().startswith(f"delegate: {len(d.delegated)} nodes → {len(d.delegate_calls)} delegate call")
    assert f"{len(d.patterns_outside)} dq-op-q pattern" in d.summary()
    assert d.patterns_outside == delegate.patterns


def test_patterns_left_outside_the_delegate_are_listed(flow):
    pipe = flow("sample:mobilenet_v2", flow="pt2e", partitioner="demo")
    d = stage_diff(pipe, "delegate", "capture")
    assert d.delegated and d.patterns_outside
    assert all(p.anchor not in d.delegated for p in d.patterns_outside)
    assert any(p.op == "conv2d" for p in pipe.results["capture"].graph.patterns)


def test_neighbouring_edge_stage_keeps_ops_renamed_by_to_edge(flow):
    pipe = flow("sample:conv_add", flow="pt2e", until="edge")
    d = diff_graphs(pipe.results["capture"].graph, pipe.results["edge"].graph)
    pairs = dict(d.kept)
    assert pairs["conv2d"] == "aten_convolution_default" and pairs["add"] == "aten_add_tensor"


def test_a_stage_against_itself_keeps_everything(flow):
    g = flow("sample:conv_add", until="convert").results["convert"].graph
    d = diff_graphs(g, g)
    assert not d.removed and not d.added and len(d.kept) == len(g.nodes)
