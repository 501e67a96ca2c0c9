"""Per node, float vs reference: every activation the reference model quantizes, compared with the float model's
value at the same place.

Matching is by provenance: the trace stage and the quantizers keep node names, so the reference node that feeds
a quantize and the float graph node of the same name are the same op. Where the quantizer folded float nodes
into their producer (conv + batch norm + relu become one conv), the float graph has nodes the reference graph
lacks; the walk follows them forward so the float value compared is the folded chain's output.

Example::

    rows = per_node_table(pipe, batches)
    rows[0]   # the worst node: PerNodeRow(node='conv1', sqnr_db=28.1, matched='relu', how='folded relu', ...)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import fx

from quantviz.graph.kinds import canonical_target
from quantviz.numerics.capture import capture_values
from quantviz.measure.metrics import pair_metrics
from quantviz.pipeline_view import PipelineView


@dataclass
class PerNodeRow:
    """One activation the reference model quantizes, against the float model's value at the same place."""

    node: str             # the reference graph node whose output is quantized (the id the graph view colours)
    target: str           # its operator ("aten.conv2d.default", "module features.0")
    quantize_node: str    # the quantize of its output
    matched: str          # the float graph node compared with it ("" when none)
    how: str              # "same name", "folded <names>", or why there is no match
    scale: float          # the quantize's scale: one LSB
    sqnr_db: float = float("nan")
    cosine: float = float("nan")
    max_abs_error: float = float("nan")
    mean_abs_error: float = float("nan")
    mean_lsb: float = float("nan")  # mean |float - reference| in units of the quantize's scale

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def float_graph(pipe: PipelineView) -> fx.GraphModule:
    """The float model as the trace stage sees it (same node names as the quantized graphs); a flow without one
    (the recipe flow) gets ``torch.export`` of the float model."""
    spec, config = pipe.spec, pipe.config
    trace = pipe.results.get(pipe.role("float_graph") or "")
    if trace is not None and trace.ok:  # the trace stage's own graph: skipped modules, wrapped helpers and all
        return trace.artifact if isinstance(trace.artifact, fx.GraphModule) else trace.artifact.module()
    if pipe.flow.float_graph is not None:  # the flow's own way (fx: symbolic tracing, skipped modules as leaves)
        return pipe.flow.float_graph(spec, config)
    return spec.export().module()


def _is_activation_quantize(n: fx.Node) -> bool:
    t = str(n.target)
    return n.op == "call_function" and "quantize_per_tensor" in t and "dequantize" not in t \
        and isinstance(n.args[0], fx.Node) and n.args[0].op not in ("get_attr",)


def _value(arg: Any, values: dict[str, Any]) -> Any:
    return values[arg.name] if isinstance(arg, fx.Node) else arg


def _follow_folded(node: fx.Node, reference_names: set[str]) -> tuple[fx.Node, list[str]]:
    folded = []
    while len(node.users) == 1:
        user = next(iter(node.users))
        if user.op == "output" or user.name in reference_names:
            break
        node = user
        folded.append(user.name)
    return node, folded


def _target(n: fx.Node) -> str:
    if n.op == "call_module":
        return f"module {n.target}"
    return canonical_target(n.target) if n.op == "call_function" else n.op


def float_matches(reference: fx.GraphModule, fgraph: fx.GraphModule) -> dict[str, tuple[fx.Node | None, str]]:
    """Activation quantize name -> (the float graph node whose value it quantizes, how it was matched).

    Example::

        float_matches(pipe.results["convert"].artifact, float_graph(pipe))["quantize_per_tensor_default_24"]
        # (conv2d node of the float graph, 'folded batch_norm')
    """
    fnodes = {n.name: n for n in fgraph.graph.nodes}
    ref_names = {n.name for n in reference.graph.nodes}
    plans: dict[str, tuple[fx.Node | None, str]] = {}
    for q in reference.graph.nodes:
        if not _is_activation_quantize(q):
            continue
        p = q.args[0]
        fn = fnodes.get(p.name)
        if fn is None:
            plans[q.name] = (None, f"no float node named {p.name}")
            continue
        end, folded = _follow_folded(fn, ref_names)
        plans[q.name] = (end, "same name" if not folded else "folded " + ", ".join(folded))
    return plans


def per_node_table(pipe: PipelineView, batches: list[tuple]) -> list[PerNodeRow]:
    """One row per activation quantize of the reference model, worst SQNR first."""
    reference: fx.GraphModule = pipe.reference_module()
    fgraph = float_graph(pipe)
    quantizes = [n for n in reference.graph.nodes if _is_activation_quantize(n)]
    float_vals: dict[str, list[torch.Tensor]] = {}
    ref_vals: dict[str, list[torch.Tensor]] = {}
    scales: dict[str, float] = {}
    plans = float_matches(reference, fgraph)
    float_keep = {end.name for end, _ in plans.values() if end is not None}
    ref_keep = {q.name for q in quantizes} | {a.name for q in quantizes for a in q.args[1:3] if isinstance(a, fx.Node)}
    for batch in batches:
        fv = capture_values(fgraph, batch, lambda n: n.name in float_keep)
        rv = capture_values(reference, batch, lambda n: n.name in ref_keep)
        for q in quantizes:
            end, _ = plans[q.name]
            scale = float(torch.as_tensor(_value(q.args[1], rv)).reshape(-1)[0])
            zp = float(torch.as_tensor(_value(q.args[2], rv)).reshape(-1)[0])
            scales[q.name] = scale
            ref_vals.setdefault(q.name, []).append((rv[q.name].double() - zp) * scale)
            if end is not None and isinstance(fv.get(end.name), torch.Tensor):
                float_vals.setdefault(q.name, []).append(fv[end.name].double())
    rows = []
    for q in quantizes:
        p = q.args[0]
        end, how = plans[q.name]
        row = PerNodeRow(p.name, _target(p), q.name, end.name if end is not None else "", how, scales[q.name])
        f, r = float_vals.get(q.name), ref_vals.get(q.name)
        if f and r and all(a.shape == b.shape for a, b in zip(f, r)):
            ft, rt = torch.cat([x.flatten() for x in f]), torch.cat([x.flatten() for x in r])
            m = pair_metrics(ft, rt)
            row.sqnr_db, row.cosine = m.sqnr_db, m.cosine
            row.max_abs_error, row.mean_abs_error = m.max_abs_error, m.mean_abs_error
            row.mean_lsb = m.mean_abs_error / row.scale if row.scale else float("nan")
        elif f and r:
            row.how, row.matched = f"shapes differ ({tuple(f[0].shape)} vs {tuple(r[0].shape)})", ""
        rows.append(row)
    rows.sort(key=lambda r: (r.sqnr_db != r.sqnr_db, r.sqnr_db))  # NaN (unmatched) last
    return rows
