"""The default view of each stage of a pipeline, and the diff against the stage before it.

Joins the pipeline's results with the diff and the renderer; the CLI, the report and the app use it::

    spec = stage_view(pipe, "fuse")           # fused operators carry "fused from dq → add → relu → q"
    dot = to_dot(pipe.results["fuse"].graph, spec)
"""
from __future__ import annotations

from dataclasses import replace

from quantviz.config import STAGES
from quantviz.diff import GraphDiff, diff_graphs
from quantviz.pipeline import Pipeline
from quantviz.render.view import ViewSpec


def previous_graph_stage(pipe: Pipeline, stage: str) -> str | None:
    """The nearest earlier stage that has a graph."""
    for s in reversed(STAGES[: STAGES.index(stage)]):
        r = pipe.results.get(s)
        if r is not None and r.graph is not None:
            return s
    return None


def stage_diff(pipe: Pipeline, stage: str, against: str | None = None) -> GraphDiff | None:
    """Diff of ``stage`` against ``against`` (default: the previous stage with a graph)."""
    against = against or previous_graph_stage(pipe, stage)
    a, b = pipe.results.get(against or ""), pipe.results.get(stage)
    if a is None or b is None or a.graph is None or b.graph is None:
        return None
    return diff_graphs(a.graph, b.graph)


def fusion_notes(pipe: Pipeline) -> dict[str, str]:
    """Fused operator id -> "fused from <pattern>" for the fuse stage."""
    d = stage_diff(pipe, "fuse", "delegate")
    if d is None:
        return {}
    before = pipe.results["delegate"].graph
    labels = {p.id: p.label() for p in before.patterns}
    return {op: f"fused from {labels[pid]} ({pid})" for op, pid in d.fused.items()}


def why_notes(pipe: Pipeline) -> dict[str, str]:
    """Anchor id -> "not fused: <reason>" for every pattern left unfused, and partitioner reasons per node."""
    notes: dict[str, str] = {}
    delegate = pipe.results.get("delegate")
    if delegate is not None and delegate.ok:
        for node, reasons in delegate.diagnostics.get("partition_reasons", {}).items():
            notes[node] = "not delegated: " + "; ".join(reasons)
    if all(s in pipe.results and pipe.results[s].ok for s in ("convert", "delegate", "fuse")):
        from quantviz.why.ledger import build_ledger

        for row in build_ledger(pipe).rows:
            if row.fate == "unfused" and row.node:
                notes[row.node] = "not fused: " + row.reason
    return notes


def stage_view(pipe: Pipeline, stage: str, base: ViewSpec = ViewSpec()) -> ViewSpec:
    """``base`` plus what the stage itself should show: on delegate, the partitioner's reasons per rejected
    node; on fuse, fusion links and, for each unfused pattern, why it was not fused."""
    if stage not in ("delegate", "fuse"):
        return base
    notes = dict(base.notes)
    why = why_notes(pipe)
    graph = pipe.results[stage].graph
    ids = {n.id for n in graph.nodes} if graph else set()
    if stage == "delegate":
        notes.update({k: v for k, v in why.items() if k in ids and v.startswith("not delegated")})
    else:
        notes.update({k: v for k, v in why.items() if k in ids and v.startswith("not fused")})
        notes.update(fusion_notes(pipe))
    return replace(base, notes=tuple(notes.items()))
