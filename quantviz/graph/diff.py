"""What changed between two stages' graphs (any two, not only neighbours).

Nodes are matched by provenance: a node of the later graph descends from a node of the earlier one
when the earlier node's lineage (its name, then the ``from_node`` chain torch and ExecuTorch keep) is
a suffix of the later node's lineage. Copies (``to_backend`` copies the program) keep the lineage, so
nodes inside delegate subgraphs match the nodes they were lowered from. Graphs without provenance
(symbolically traced fx graphs), and placeholders, fall back to equal names and kinds::

    d = diff_graphs(pipe.results["capture"].graph, pipe.results["delegate"].graph)
    d.summary()   # 'delegate: 162 nodes → 1 delegate call; 0 dq-op-q patterns left outside; ...'
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from quantviz.graph.model import GraphView, NodeView, PatternInstance

STRUCTURAL = ("input", "parameter", "output")


@dataclass
class GraphDiff:
    before: str
    after: str
    kept: list[tuple[str, str]] = field(default_factory=list)  # (before id, after id)
    removed: list[str] = field(default_factory=list)  # before ids with no descendant
    added: list[str] = field(default_factory=list)  # after ids with no ancestor (subgraph ids included)
    delegated: dict[str, str] = field(default_factory=dict)  # before id -> delegate call id it went into
    delegate_calls: list[str] = field(default_factory=list)  # after ids of delegate calls
    patterns_outside: list[PatternInstance] = field(default_factory=list)  # after patterns not delegated
    fused: dict[str, str] = field(default_factory=dict)  # after quantized-op id -> before pattern id

    def summary(self) -> str:
        parts = []
        if self.delegated:
            parts.append(f"{self.after}: {len(self.delegated)} nodes → {len(self.delegate_calls)} delegate "
                         f"call{'s' if len(self.delegate_calls) != 1 else ''}; {len(self.patterns_outside)} dq-op-q "
                         f"pattern{'s' if len(self.patterns_outside) != 1 else ''} left outside")
        if self.fused:
            parts.append(f"{len(self.fused)} pattern{'s' if len(self.fused) != 1 else ''} fused into quantized "
                         "operators")
        parts.append(f"{len(self.kept)} kept, {len(self.removed)} removed, {len(self.added)} added")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["summary"] = self.summary()
        return d


def _key(n: NodeView) -> tuple[str, ...]:
    return (n.name, *n.lineage)


def _all_nodes(g: GraphView) -> list[tuple[NodeView, str | None]]:
    """Top-level nodes and subgraph nodes, each with the delegate call it lies in (None at top level)."""
    out: list[tuple[NodeView, str | None]] = [(n, None) for n in g.nodes]
    for call_id, sub in g.subgraphs.items():
        out += [(n, call_id) for n in sub.nodes if n.kind not in ("input", "output")]  # weights go in too
    return out


def diff_graphs(before: GraphView, after: GraphView) -> GraphDiff:
    """Match ``after``'s nodes to ``before``'s and classify them kept, removed, added, delegated, fused."""
    by_key = {_key(n): n.id for n in before.nodes}
    by_name = {(n.name, n.kind): n.id for n in before.nodes}
    d = GraphDiff(before.stage, after.stage)
    matched_before: set[str] = set()
    for node, call in _all_nodes(after):
        key = _key(node)
        a_id = None
        if node.kind in STRUCTURAL or not node.lineage:
            # placeholders (lowered ones carry their users' lineage) and fx graphs without provenance
            a_id = by_name.get((node.name, node.kind))
        if a_id is None:
            a_id = next((by_key[key[k:]] for k in range(len(key)) if key[k:] in by_key), None)
        if a_id is None:
            d.added.append(node.id)
            continue
        matched_before.add(a_id)
        d.kept.append((a_id, node.id))
        if call is not None:
            d.delegated[a_id] = call
    d.removed = [n.id for n in before.nodes if n.id not in matched_before]
    d.delegate_calls = [n.id for n in after.nodes if n.kind == "delegate"]
    if d.delegated:
        d.delegated = {a: c for a, c in d.delegated.items() if before.node(a).kind not in STRUCTURAL}
    d.patterns_outside = list(after.patterns)
    d.fused = fusion_links(before, after, d)
    return d


def fusion_links(before: GraphView, after: GraphView, d: GraphDiff) -> dict[str, str]:
    """For each quantized operator new in ``after``, the ``before`` pattern it replaced.

    A fused op reads the tensors its pattern's dequantize nodes read; that pattern's anchor is gone. Where the
    producer is itself a fused op (conv2d -> add chains), it stands for the anchor of the pattern it replaced.
    """
    back = {b: a for a, b in d.kept}
    removed = set(d.removed)
    links: dict[str, str] = {}
    added = set(d.added)
    for node in after.nodes:
        if node.kind != "quantized_op" or node.id not in added:
            continue
        sources = {back[i] for i in node.inputs if i in back}
        best, score = None, 0
        for p in before.patterns:
            if p.anchor not in removed:
                continue
            dq_sources = {before.node(q).inputs[0] for q in p.input_dqs if before.node(q).inputs}
            overlap = len(dq_sources & sources)
            if overlap > score:
                best, score = p, overlap
        if best is not None:
            links[node.id] = best.id
            if best.output_q:  # later fused ops that read this one read that pattern's output
                back[node.id] = best.output_q
    return links
