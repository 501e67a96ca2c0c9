"""The counts a stage's page shows above its graph: only those that mean something for that stage.

A float graph has no quantize nodes and nothing delegated, so its page counts its nodes and nothing else; a prepared
one its observers; the q/dq counts and the patterns appear once the graph holds quantization; "delegated ops" from the stage that partitions
on (there a 0 says that nothing was delegated); "fused ops" on the lowered stage, and wherever there are some::

    [(c.label, c.value) for c in stage_counters(pipe, "trace")]     # [('nodes', 10)]
    [(c.label, c.value) for c in stage_counters(pipe, "convert")]   # [('nodes', 31), ('quantize', 9), ...]
"""
from __future__ import annotations

from dataclasses import dataclass

from quantviz.pipeline import Pipeline
from quantviz.stage_views import stage_diff


@dataclass(frozen=True)
class StageCounter:
    """One count above a stage's graph."""

    label: str  # e.g. "dequantize"
    value: int
    help: str  # what is counted, in one sentence


def stage_counters(pipe: Pipeline, stage: str) -> list[StageCounter]:
    """The counters for ``stage``'s page, in a fixed order; empty when the stage has no graph."""
    result = pipe.results.get(stage)
    if result is None or result.graph is None:
        return []
    g = result.graph
    kinds = g.kind_counts()
    out = [StageCounter("nodes", len(g.nodes), "nodes of this stage's graph (delegates count as one)")]
    if kinds.get("observer"):  # a prepared model: what calibration fills in
        out.append(StageCounter("observers", kinds["observer"], "observers recording the ranges calibration sees"))
    q, dq = kinds.get("quantize", 0), kinds.get("dequantize", 0)
    if q or dq or g.patterns:
        out += [StageCounter("quantize", q, "quantize nodes (float to integer)"),
                StageCounter("dequantize", dq, "dequantize nodes (integer to float)"),
                StageCounter("patterns", len(g.patterns), "reference quantized patterns: dq → op → q")]
    order = pipe.stage_names
    delegated = pipe.role("delegated")
    if delegated in order and stage in order and order.index(stage) >= order.index(delegated):
        d = stage_diff(pipe, delegated)
        if d is not None:
            out.append(StageCounter("delegated ops", len(d.delegated),
                                    f"edge ops the partitioner handed to a backend at '{delegated}'"))
    fused = kinds.get("quantized_op", 0)
    if fused or stage == pipe.role("lowered"):
        out.append(StageCounter("fused ops", fused, "quantized operators that replaced a dq → op → q pattern"))
    return out
