"""The default view of each stage of a pipeline, and the diff against the stage before it.

Joins the pipeline's results with the diff and the renderer; the CLI, the report and the app use it::

    spec = stage_view(pipe, "fuse")           # fused operators carry "fused from dq → add → relu → q"
    dot = to_dot(pipe.results["fuse"].graph, spec)
"""
from __future__ import annotations

from dataclasses import replace

from quantviz.graph.diff import GraphDiff, diff_graphs
from quantviz.graph.model import GraphView
from quantviz.pipeline import Pipeline
from quantviz.render.view import ViewSpec
from quantviz.why.ledger import build_ledger, ledger_stages


def previous_graph_stage(pipe: Pipeline, stage: str) -> str | None:
    """The nearest earlier stage that has a graph."""
    for s in reversed(pipe.stage_names[: pipe.flow.index(stage)]):
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


def partition_notes(pipe: Pipeline) -> dict[str, str]:
    """Node id -> "not delegated: <the partitioner's reasons>" (read from the delegate stage's diagnostics)."""
    delegate = pipe.results.get("delegate")
    if delegate is None or not delegate.ok:
        return {}
    return {node: "not delegated: " + "; ".join(reasons)
            for node, reasons in delegate.diagnostics.partition_reasons.items()}


def unfused_notes(pipe: Pipeline) -> dict[str, str]:
    """Anchor id -> "not fused: <reason>" for every pattern the ledger finds left unfused."""
    if not all(s in pipe.results and pipe.results[s].ok for s in ledger_stages(pipe)):
        return {}

    return {row.node: "not fused: " + row.reason for row in build_ledger(pipe).rows
            if row.fate == "unfused" and row.node}


def stage_view(pipe: Pipeline, stage: str, base: ViewSpec = ViewSpec()) -> ViewSpec:
    """``base`` plus what the stage itself should show: on delegate, the partitioner's reasons per rejected
    node; on fuse, fusion links and, for each unfused pattern, why it was not fused (the ledger is built
    only for fuse); on a QAT flow's convert, the nodes whose qparams differ from training's."""
    qat = pipe.results[stage].diagnostics.qat_qparams if stage in pipe.results else None
    if stage not in ("delegate", "fuse") and qat is None:
        return base
    graph = pipe.results[stage].graph
    ids = {n.id for n in graph.nodes} if graph else set()
    found = partition_notes(pipe) if stage == "delegate" else \
        {**unfused_notes(pipe), **fusion_notes(pipe)} if stage == "fuse" else qat.node_notes()
    notes = dict(base.notes)
    notes.update({k: v for k, v in found.items() if k in ids})
    return replace(base, notes=tuple(notes.items()))


def linked_nodes(d: GraphDiff, node_id: str, from_stage: str, before: GraphView | None = None) -> list[str]:
    """The nodes of the other graph of ``d`` that ``node_id`` (a node of ``from_stage``'s graph) corresponds to by
    provenance: what it became (kept as, delegated into, fused into) or what it came from (its ancestors, the
    nodes a delegate call took, the pattern a fused operator replaced; ``before`` gives the pattern's members).

        d = diff_graphs(convert, fuse)
        linked_nodes(d, "conv2d_1", "convert", convert)   # ['quantized_conv2d_1']
        linked_nodes(d, "executorch_call_delegate", "delegate", edge)   # every node the delegate took
    """
    patterns = {p.id: p for p in before.patterns} if before is not None else {}
    if from_stage == d.before:
        out = [b for a, b in d.kept if a == node_id]
        if node_id in d.delegated:
            out.append(d.delegated[node_id])
        out += [op for op, pid in d.fused.items() if pid in patterns and node_id in patterns[pid].members]
    else:
        out = [a for a, b in d.kept if b == node_id]
        out += [a for a, call in d.delegated.items() if call == node_id]
        if node_id in d.fused and d.fused[node_id] in patterns:
            out += patterns[d.fused[node_id]].members
    return list(dict.fromkeys(out))
