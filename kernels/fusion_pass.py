"""Lower reference patterns to quantviz operators: the pass that applies ``patterns.ALL``.

``fuse_graph`` works on one graph module and reports what it did; ``fuse`` runs it (after
``per_channel_weights`` and ``canonical_args``) on a copy of every method of an EdgeProgramManager.

Example::

    load()                                   # the operators must exist before patterns are traced
    edge2, result = fuse(edge)
    result.records[0]   # FusionRecord(pattern='conv2d_relu', op='quantviz::conv2d', node='conv2d',
                        #              replaced=('dequantize_per_tensor_3', ..., 'quantize_per_tensor_1'))
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import fx
from torch.utils import _pytree as pytree

from quantviz_kernels.patterns import ALL, FusionPattern
from quantviz_kernels.patterns.base import trace_edge

_QDQ = ("quantize_per", "dequantize_per", "getitem", "permute_copy")
_META_KEYS = ("nn_module_stack", "stack_trace", "source_fn_stack", "from_node", "debug_handle", "torch_fn")


@dataclass(frozen=True)
class FusionRecord:
    """One node group replaced by one quantviz operator."""

    pattern: str
    op: str
    node: str                   # the new node's name
    replaced: tuple[str, ...]   # names of the nodes it replaced (q/dq and float ops)


@dataclass(frozen=True)
class Refusal:
    """A match the pattern's check refused, and why."""

    pattern: str
    anchor: str  # the quantize node that ends the match
    reason: str


@dataclass
class FusionResult:
    records: list[FusionRecord] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    weights_rewritten: int = 0
    args_filled: int = 0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records:
            out[r.op] = out.get(r.op, 0) + 1
        return out


def _fill_meta(gm: fx.GraphModule, new: fx.Node, source: fx.Node | None) -> None:
    if source is not None:
        for key in _META_KEYS:
            if key in source.meta:
                new.meta[key] = source.meta[key]
    if "val" not in new.meta:
        args, kwargs = pytree.tree_map_only(fx.Node, lambda x: x.meta["val"], (new.args, new.kwargs))
        new.meta["val"] = new.target(*args, **kwargs)


def _apply(gm: fx.GraphModule, p: FusionPattern, result: FusionResult) -> None:
    from torch.fx.subgraph_rewriter import replace_pattern_with_filters

    pattern_gm, replacement_gm = trace_edge(p.pattern), trace_edge(p.replacement)
    placeholders = [n for n in pattern_gm.graph.nodes if n.op == "placeholder"]
    output_arg = next(n for n in pattern_gm.graph.nodes if n.op == "output").args[0]
    seen: set[str] = set()

    def values(nodes_map) -> dict:
        return {pn.name: nodes_map[pn] for pn in placeholders}

    def accept(match, original_graph, pattern_graph) -> bool:
        reason = p.check(values(match.nodes_map))
        anchor = match.nodes_map[output_arg].name
        if reason is not None and anchor not in seen:
            seen.add(anchor)
            result.refusals.append(Refusal(p.name, anchor, reason))
        return reason is None

    for r in replace_pattern_with_filters(gm, pattern_gm, replacement_gm, [accept]):
        v = values(r.nodes_map)
        matched = [gn for pn, gn in r.nodes_map.items() if pn.op not in ("placeholder", "output")]
        new = next(n for n in r.replacements if n.op == "call_function")
        main = next((gn for gn in matched if not any(k in str(gn.target) for k in _QDQ)), None)
        p.finalize(new, v)
        _fill_meta(gm, new, main)
        result.records.append(FusionRecord(p.name, p.op, new.name, tuple(gn.name for gn in matched)))


def fuse_graph(gm: fx.GraphModule, patterns: list[FusionPattern] | None = None) -> FusionResult:
    """Apply ``patterns`` (default: all) to ``gm`` in place; returns the records and refusals."""
    result = FusionResult()
    for p in patterns or ALL:
        _apply(gm, p, result)
    # a later pattern may have re-matched a group an earlier one refused for another reason: keep open ones only
    fused = {name for r in result.records for name in r.replaced}
    result.refusals = [x for x in result.refusals if x.anchor not in fused]
    gm.graph.eliminate_dead_code()
    gm.graph.lint()
    gm.recompile()
    return result


def fuse_program(ep, patterns: list[FusionPattern] | None = None) -> FusionResult:
    """Canonicalise arguments, normalise weights to per-channel form, then fuse; edits ``ep`` in place."""
    from quantviz_kernels.canonical_args import canonical_args
    from quantviz_kernels.per_channel_weights import per_channel_weights

    filled = canonical_args(ep.graph_module)
    rewritten = per_channel_weights(ep)
    result = fuse_graph(ep.graph_module, patterns)
    result.weights_rewritten, result.args_filled = rewritten, filled
    return result


def fuse(edge, patterns: list[FusionPattern] | None = None):
    """A fused copy of ``edge`` (an EdgeProgramManager; left untouched) and the FusionResult of each method.

    Returns ``(EdgeProgramManager, FusionResult)`` with the results of all methods merged.
    """
    from executorch.exir.program._program import EdgeProgramManager

    from quantviz_kernels.loader import load

    load()
    merged = FusionResult()
    programs = {}
    for name in edge.methods:
        ep = copy.deepcopy(edge.exported_program(name))
        r = fuse_program(ep, patterns)
        merged.records += r.records
        merged.refusals += r.refusals
        merged.weights_rewritten += r.weights_rewritten
        merged.args_filled += r.args_filled
        programs[name] = ep
    fused = EdgeProgramManager(programs, copy.deepcopy(edge._config_methods), edge.compile_config)
    return fused, merged
