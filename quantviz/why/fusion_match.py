"""Match one reference quantized pattern instance against fusion patterns and say where the match stops.

Each fusion pattern is an fx graph (ExecuTorch's ``get_quant_patterns_and_replacements`` gives Edge-dialect
``GraphModule``s). The instance is aligned on its anchor op; the matcher walks the pattern backwards through
the anchor's arguments (dequantize inputs) and forwards along the single-user chain to the pattern's output,
comparing targets, literal arguments (the dtype), and user counts, and records every mismatch::

    verdict = explain_unfused(anchor_node, patterns)
    verdict.reason   # "quantized_decomposed add+relu pattern: every node matched except ... torch.uint8 ..."
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import fx

from quantviz.graph.kinds import canonical_target, op_name

QDQ = ("quantize_per", "dequantize_per", "dequantize_affine", "quantize_affine", "choose_qparams")


@dataclass
class PatternGraph:
    """A named fusion pattern: its graph, and the filters the rewriter applies after a structural match."""

    name: str
    graph: fx.Graph
    filters: list[Callable] = field(default_factory=list)
    source: str = "executorch"

    @property
    def anchor_target(self) -> str | None:
        for n in self.graph.nodes:
            if n.op == "call_function" and not _is_qdq(n) and canonical_target(n.target) != "builtins.getattr":
                return canonical_target(n.target)
        return None


@dataclass
class Mismatch:
    kind: str  # "literal", "target", "users", "arity"
    where: str  # the pattern node, e.g. "dequantize_per_tensor (input 1 of add)"
    wants: str
    has: str


@dataclass
class MatchAttempt:
    pattern: PatternGraph
    matched: int  # pattern op nodes whose target matched
    total: int
    mismatches: list[Mismatch]

    @property
    def complete(self) -> bool:
        return self.matched == self.total and not self.mismatches


@dataclass
class FusionVerdict:
    """Why an instance was not fused: a reason kind, the words, and the closest attempt."""

    kind: str  # "dtype", "literal", "users", "target", "no_pattern", "filter", "matched"
    reason: str
    attempt: MatchAttempt | None = None


def _is_qdq(n: Any) -> bool:
    return isinstance(n, fx.Node) and n.op == "call_function" and any(q in canonical_target(n.target) for q in QDQ)


def _op_name(target: str) -> str:
    return op_name(target)


def executorch_patterns() -> list[PatternGraph]:
    """ExecuTorch's QuantFusionPass patterns, named by their ops and dtype."""
    from executorch.exir.passes._quant_patterns_and_replacements import get_quant_patterns_and_replacements

    out = []
    for pattern, _replacement, filters in get_quant_patterns_and_replacements(None):
        gm = pattern if isinstance(pattern, fx.GraphModule) else fx.symbolic_trace(pattern)
        ops = [_op_name(canonical_target(n.target)) for n in gm.graph.nodes
               if n.op == "call_function" and not _is_qdq(n) and canonical_target(n.target) != "builtins.getattr"]
        dtypes = sorted({str(a).replace("torch.", "") for n in gm.graph.nodes for a in n.args
                         if isinstance(a, torch.dtype)})
        out.append(PatternGraph(f"quantized_decomposed {'+'.join(ops)} pattern ({', '.join(dtypes) or 'any dtype'})",
                                 gm.graph, list(filters)))
    return out


def match(pattern: PatternGraph, anchor: fx.Node) -> MatchAttempt:
    """Align ``pattern``'s anchor op with ``anchor`` and compare everything around it."""
    p_anchor = next(n for n in pattern.graph.nodes if n.op == "call_function"
                    and canonical_target(n.target) == pattern.anchor_target)
    total = sum(1 for n in pattern.graph.nodes if n.op == "call_function")
    mismatches: list[Mismatch] = []
    matched = 0
    seen: set[fx.Node] = set()

    def visit(p: fx.Node, g: Any, where: str, internal: bool) -> None:
        nonlocal matched
        if p.op == "placeholder" or p in seen:
            return
        seen.add(p)
        if not isinstance(g, fx.Node) or canonical_target(g.target) != canonical_target(p.target):
            has = canonical_target(g.target) if isinstance(g, fx.Node) else repr(g)
            mismatches.append(Mismatch("target", where, _op_name(canonical_target(p.target)), _op_name(has)))
            return
        matched += 1
        if internal and len(g.users) > 1:
            mismatches.append(Mismatch("users", where, "1 user", f"{len(g.users)} users"))
        for i, (pa, ga) in enumerate(zip(p.args, g.args)):
            if isinstance(pa, fx.Node):
                visit(pa, ga, f"{_op_name(canonical_target(pa.target)) if pa.op != 'placeholder' else 'input'} "
                              f"(input {i} of {_op_name(canonical_target(p.target))})", True)
            elif pa != ga and not isinstance(pa, (list, tuple)):
                mismatches.append(Mismatch("literal", f"{_op_name(canonical_target(p.target))} argument {i}",
                                           str(pa), str(ga)))
        if len(p.args) != len(g.args):
            mismatches.append(Mismatch("arity", _op_name(canonical_target(p.target)), f"{len(p.args)} arguments",
                                       f"{len(g.args)} arguments"))

    visit(p_anchor, anchor, _op_name(canonical_target(p_anchor.target)), False)
    # forward: the pattern's single-user chain from the anchor to its output, against the graph's
    p, g = p_anchor, anchor
    while True:
        p_users = [u for u in p.users if u.op != "output"]
        if not p_users:
            break
        p_next = p_users[0]
        g_users = list(g.users)
        if len(g_users) != 1:
            mismatches.append(Mismatch("users", _op_name(canonical_target(g.target)), "1 user", f"{len(g_users)} users"))
            break
        g_next = g_users[0]
        seen_before = len(mismatches)
        visit(p_next, g_next, f"{_op_name(canonical_target(p_next.target))} after {_op_name(canonical_target(p.target))}",
              bool([u for u in p_next.users if u.op != "output"]))
        if len(mismatches) > seen_before and mismatches[seen_before].kind == "target":
            break
        p, g = p_next, g_next
    return MatchAttempt(pattern, matched, total, mismatches)


def explain_unfused(anchor: fx.Node, patterns: Sequence[PatternGraph]) -> FusionVerdict:
    """The closest fusion pattern for the instance anchored at ``anchor``, and the first reason it failed."""
    op = canonical_target(anchor.target)
    candidates = [p for p in patterns if p.anchor_target == op]
    if not candidates:
        return FusionVerdict("no_pattern", f"no fusion pattern exists for {op.rsplit('.', 1)[0]}")
    attempts = [match(p, anchor) for p in candidates]
    best = max(attempts, key=lambda a: (a.matched - len([m for m in a.mismatches if m.kind == "target"]) * 2,
                                        -len(a.mismatches)))
    name = best.pattern.name
    if best.complete:
        failed = [f.__name__ for f in best.pattern.filters]
        if failed:
            return FusionVerdict("filter", f"{name}: the graph matches, but the pattern's filter "
                                           f"({', '.join(failed)}) rejected this instance", best)
        return FusionVerdict("matched", f"{name}: matches; it should have been fused", best)
    first = best.mismatches[0]
    literal = [m for m in best.mismatches if m.kind == "literal"]
    if first.kind == "literal" and len(literal) == len(best.mismatches):
        dtype = all(m.wants.startswith("torch.") for m in literal)
        where = ", ".join(sorted({m.where for m in literal}))
        what = "dtype argument" if dtype else "argument"
        return FusionVerdict("dtype" if dtype else "literal",
                             f"{name}: every node matched except the {what} of {where}: pattern wants "
                             f"{literal[0].wants}, graph has {literal[0].has}", best)
    if first.kind == "users":
        return FusionVerdict("users", f"{name}: the {first.where} has {first.has}; fusion needs {first.wants} "
                                      "(run DuplicateDequantNodePass: --duplicate-dequant on)", best)
    if first.kind == "target" and "quantize" in first.wants:
        return FusionVerdict("target", f"{name}: no quantize after {first.where.split(' after ')[-1]}: the graph "
                                       f"has {first.has} there (the quantizer annotated "
                                       f"{first.where.split(' after ')[-1]}+{first.has} as one unit)", best)
    return FusionVerdict(first.kind, f"{name}: stops at {first.where}: pattern wants {first.wants}, graph has "
                                     f"{first.has}", best)
