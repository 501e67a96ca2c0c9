"""The counts above a stage's graph: only those that mean something there (no wall of zeros on a float graph)."""
from __future__ import annotations

from quantviz.stage_counts import stage_counters


def counts(pipe, stage: str) -> dict[str, int]:
    return {c.label: c.value for c in stage_counters(pipe, stage)}


def test_a_float_graph_counts_its_nodes_only_and_quantized_stages_add_what_they_hold(flow):
    pipe = flow("sample:digits_cnn", flow="pt2e", backend="xnnpack", until="emit")
    trace = counts(pipe, "trace")
    assert trace == {"nodes": len(pipe.results["trace"].graph.nodes)}  # not five zeros beside it
    convert = counts(pipe, "convert")
    g = pipe.results["convert"].graph
    assert list(convert) == ["nodes", "quantize", "dequantize", "patterns"]
    assert convert["quantize"] == g.kind_counts()["quantize"] > 0 and convert["patterns"] == len(g.patterns) > 0
    delegate = counts(pipe, "delegate")
    assert delegate["delegated ops"] > 0  # XNNPACK took the convolutions and linears
    assert "fused ops" not in delegate  # none, and fusion is not this stage's work
    fuse = counts(pipe, "fuse")
    assert fuse["fused ops"] == 0 and fuse["delegated ops"] == delegate["delegated ops"]  # the lowered stage says 0
    calibrate = counts(pipe, "calibrate")
    assert list(calibrate) == ["nodes", "observers"] and calibrate["observers"] > 0
    assert counts(pipe, "run") == {}  # not run (until emit): no counters


def test_nothing_delegated_or_fused_is_said_on_the_stage_that_does_it_only(flow):
    pipe = flow("sample:digits_cnn", flow="fx", backend="portable", until="emit")
    assert counts(pipe, "delegate")["delegated ops"] == 0  # a 0 that means something: nothing was delegated
    assert "delegated ops" not in counts(pipe, "edge")
    assert counts(pipe, "fuse")["fused ops"] == 0  # said on the lowered stage: nothing fused by this fusion
    assert "fused ops" not in counts(pipe, "emit")
