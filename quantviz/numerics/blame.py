"""Where accuracy is lost: one row per quantized pattern of the reference model (the convert stage's
``GraphView.patterns``), with the error each level adds at that pattern's output.

The levels (see ``levels.py``) and the error each step between them adds:

- float -> reference: quantization error (the float model's value against the dequantized reference value);
- reference -> fused: lowering and fusion error (the fuse stage's program run ahead of time in PyTorch; ops inside
  delegates run there as the edge ops they were lowered from, ``executorch_call_delegate``'s Python kernel);
- fused -> runtime: kernel error (the .pte in the ExecuTorch runtime; each value read from the ETDump debug buffer:
  a portable kernel's output, or a delegate call's outputs).

Each is given as SQNR (dB) and as the largest error in LSB of the node's output scale (the scale of the pattern's
output quantize).

**Local and propagated error.** A level's error at a node is partly made there and partly carried in from
upstream. The *local* error is the node's error given equal inputs: the reference model is run once more with
the level's own values substituted at every quantized activation where that level exposes one (``capture_values``'
``substitutes``); the reference value each pattern then computes from those inputs is compared with the level's
value, in LSB (``runtime_local_max_lsb``, ``fused_local_max_lsb``). Where every quantized op is a portable kernel
or its own delegate (``--delegate-granularity op``), the substituted values are the pattern's direct inputs; inside
a delegate holding several patterns only the delegate's inputs and outputs are exposed, so the local error of its
output is that of the whole delegate (``runtime_source="delegate-output"``). The propagated error is the rest: the
total ``runtime_vs_reference_max_lsb`` against the local one.

``first_divergence`` marks the first pattern in execution order whose runtime local error exceeds 1 LSB: the first
kernel that computes something other than its reference op given the same inputs.

Example::

    rows = blame_table(pipe, pipe.spec.comparison_batches()[:1])
    next(r for r in rows if r.first_divergence)   # BlameRow(node='conv2d_3', runtime_local_max_lsb=12.0, ...)
    blame_by_stage(pipe, rows)["fuse"]["getitem_3"].node   # 'conv2d_3'
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch
from torch import fx

from quantviz.graph.diff import STRUCTURAL, diff_graphs
from quantviz.graph.model import GraphView
from quantviz.numerics.capture import capture_values
from quantviz.measure.metrics import lsb_errors, sqnr_db
from quantviz.numerics.per_node import float_graph, float_matches
from quantviz.known_issues import runtime_preflight
from quantviz.numerics.runtime_intermediates import RuntimeEvent, debug_buffer_size, kernel_nodes, runtime_events
from quantviz.pipeline_view import PipelineView
from quantviz.model_spec import Batch

NAN = float("nan")
# A runtime op whose local error exceeds this many LSB computes something other than its reference op.
DIVERGENCE_LSB = 1.0
# Where a pattern's runtime value comes from: a kernel's output in the debug buffer; the output of a delegate of
# this pattern alone; the output of a delegate of several patterns; an intermediate-output tap of the same program
# (``taps.py``: a value inside a delegate of several patterns); "" when the runtime does not expose it.
RuntimeSource = Literal["intermediate", "delegate-op", "delegate-output", "tap", ""]


@dataclass
class BlameRow:
    """One quantized pattern of the reference model and the error each level adds at its output."""

    node: str                      # the pattern's anchor in the convert graph (the float op, e.g. "conv2d_3")
    pattern: str                   # the pattern's id in the convert graph ("p3")
    module: str                    # module path of the anchor ("features.1.conv.0"), "" when unknown
    op: str                        # the pattern's ops, e.g. "conv2d" or "add+relu"
    order: int                     # execution order among the patterns (0 = first)
    output_q: str = ""             # the convert graph's quantize that makes the pattern's output ("" when none)
    scale: float = NAN             # that quantize's scale: one LSB
    float_vs_reference_sqnr_db: float = NAN   # quantization error
    reference_vs_fused_sqnr_db: float = NAN   # lowering / fusion error (ahead of time)
    fused_vs_runtime_sqnr_db: float = NAN     # kernel error (runtime against the fused program)
    reference_vs_runtime_sqnr_db: float = NAN  # everything after convert
    reference_max_lsb: float = NAN  # max |float - reference| in LSB
    fused_max_lsb: float = NAN      # max |reference - fused| in LSB (propagated: the fused program's own inputs)
    runtime_max_lsb: float = NAN    # max |fused - runtime| in LSB
    runtime_vs_reference_max_lsb: float = NAN  # max |reference - runtime| in LSB: local plus propagated
    fused_local_max_lsb: float = NAN    # max |reference op on the fused program's inputs - fused| in LSB
    runtime_local_max_lsb: float = NAN  # max |reference op on the runtime's inputs - runtime| in LSB
    runtime_source: RuntimeSource = ""  # where the runtime's value comes from ("" when it is not exposed)
    delegate: str = ""             # the fuse stage's delegate call that computes the pattern ("" when none)
    first_divergence: bool = False  # the first pattern whose runtime local error exceeds 1 LSB
    note: str = ""                 # why a value is missing
    # the weight's quantization, e.g. "int4 per-group 32 (128×2 scales)": with groupwise scales one LSB of the
    # weight differs from group to group, so weight errors are not counted in one LSB
    weight_qparams: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def carriers(before: GraphView, after: GraphView) -> dict[str, str]:
    """Quantize node id of ``before`` (the convert graph) -> the top-level node of ``after`` that carries its
    value, by provenance (``diff_graphs``): the quantize itself where it was kept, a delegate call's ``getitem``
    output, the fused op its pattern became (``fusion_links``, or a quantized op descended from one of the pattern's
    ops), or, last, the value of a dequantize of it (a float value: quantized again when read).

    Example::

        carriers(pipe.results[pipe.role("reference")].graph, pipe.results[pipe.role("lowered")].graph)["quantize_per_tensor_default_24"]
        # 'getitem'
    """
    d = diff_graphs(before, after)
    top = {n.id: n for n in after.nodes}
    kept: dict[str, str] = {}
    for a, b in d.kept:
        if b in top and (top[b].kind not in STRUCTURAL or before.node(a).kind == top[b].kind):
            kept.setdefault(a, b)
    out = {a: b for a, b in kept.items() if before.node(a).kind == "quantize"}
    fused = {pattern: op for op, pattern in d.fused.items()}
    for p in before.patterns:
        if not p.output_q or p.output_q in out:
            continue
        ops = [m for m in reversed(p.members) if before.node(m).kind == "float_op"]
        found = fused.get(p.id) or next((kept[m] for m in ops if m in kept and top[kept[m]].kind == "quantized_op"),
                                        None)
        if found is not None:
            out[p.output_q] = found
    if not any(n.lineage for n in before.nodes):  # fx flow: the reference model has no provenance to follow
        _match_quantizes_in_order(before, after, out)
    users = before.users()
    for n in before.nodes:
        if n.kind == "quantize" and n.id not in out:
            dq = next((kept[u] for u in users[n.id] if before.node(u).kind == "dequantize" and u in kept), None)
            if dq is not None:
                out[n.id] = dq
    return out


def _qkey(n) -> tuple | None:
    q = n.qparams
    if q is None or q.scheme != "per_tensor" or not isinstance(q.scale, float):
        return None
    return q.dtype, round(q.scale, 12), q.zero_point


def _same_q(a, b) -> bool:
    """Same quantize parameters, and the same shape where both graphs know it."""
    return _qkey(a) == _qkey(b) and (a.shape is None or b.shape is None or a.shape == b.shape)


def _match_quantizes_in_order(before: GraphView, after: GraphView, out: dict[str, str]) -> None:
    """Quantize nodes ``before`` has no carrier for, paired in execution order with ``after``'s remaining quantize
    nodes of the same dtype, scale, zero point and shape (what symbolically traced reference models need: their
    node names do not survive ``torch.export``)."""
    taken = set(out.values())
    candidates = [n for n in after.nodes if n.kind == "quantize" and n.id not in taken and _qkey(n)]
    j = 0
    for n in before.nodes:
        if n.kind != "quantize" or n.id in out or _qkey(n) is None:
            continue
        k = next((i for i in range(j, len(candidates)) if _same_q(n, candidates[i])), None)
        if k is not None:
            out[n.id], j = candidates[k].id, k + 1


def _qparams(q: fx.Node, values: dict[str, Any]) -> tuple[float, float]:
    def get(arg: Any) -> float:
        v = values.get(arg.name) if isinstance(arg, fx.Node) else arg
        return float(torch.as_tensor(v).reshape(-1)[0])

    return get(q.args[1]), get(q.args[2])


def _as_int(v: torch.Tensor, scale: float, zp: float) -> torch.Tensor:
    """A quantized value as integers (a float value is taken as dequantized and quantized again)."""
    if v.dtype.is_floating_point:
        return torch.round(v.double() / scale + zp).long()
    return v.long()


def _inputs(batch: Any) -> Any:
    """A batch as ``capture_values`` takes it: a Batch (keyword inputs) as it is, positional inputs as a tuple."""
    return batch if isinstance(batch, Batch) else tuple(batch)


def _run_batch(gm: fx.GraphModule, batch: tuple, names: set[str], substitutes: dict[str, Any] | None = None):
    return capture_values(gm, _inputs(batch), lambda n: n.name in names, substitutes)


def _level_values(gm: fx.GraphModule, batch: tuple, carry: dict[str, str],
                  substitutes: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Convert-graph node id -> the value a stage's program computes for it (its carrier node's value)."""
    got = _run_batch(gm, batch, set(carry.values()), substitutes)
    return {a: got[b] for a, b in carry.items() if isinstance(got.get(b), torch.Tensor)}


def runtime_values(pipe: PipelineView, events: list[RuntimeEvent],
                   convert_view: GraphView) -> dict[str, tuple[torch.Tensor, RuntimeSource, str]]:
    """Convert-graph node id -> (the runtime's value, its source, the delegate call) from one run's events.

    Delegate calls (k-th ``DELEGATE_CALL`` event = k-th delegate call of the emitted program) log their arguments,
    inputs first: the last ones are the outputs, read through each ``getitem``. Kernel calls outside delegates are
    matched to the fuse stage's nodes by operator and order (``kernel_nodes``).
    """
    emit_ep = pipe.results[pipe.role("program")].artifact.exported_program()
    emit_carry = {b: a for a, b in carriers(convert_view, pipe.results[pipe.role("program")].graph).items()}
    per_call = patterns_per_call(convert_view, pipe.results[pipe.role("lowered")].graph)
    out: dict[str, tuple[torch.Tensor, RuntimeSource, str]] = {}
    calls = [n for n in emit_ep.graph.nodes if n.op == "call_function" and "call_delegate" in str(n.target)]
    delegate_events = [e for e in events if e.delegate_call]
    if len(delegate_events) != len(calls):  # not one run of this program's method: the order says nothing
        delegate_events, calls = [], []
    for event, call in zip(delegate_events, calls):
        val = call.meta.get("val")
        n_out = len(val) if isinstance(val, (list, tuple)) else 1
        outs = event.data[len(event.data) - n_out:] if len(event.data) >= n_out else []
        source: RuntimeSource = "delegate-output" if per_call.get(call.name, 0) > 1 else "delegate-op"
        for user in call.users:
            idx = user.args[1] if "getitem" in str(user.target) else 0
            if idx < len(outs) and isinstance(outs[idx], torch.Tensor) and user.name in emit_carry:
                out.setdefault(emit_carry[user.name], (outs[idx], source, call.name))
    fuse_carry = {b: a for a, b in carriers(convert_view, pipe.results[pipe.role("lowered")].graph).items()}
    gm = pipe.results[pipe.role("lowered")].artifact.exported_program().graph_module
    for i, node in kernel_nodes(events, gm).items():
        data = events[i].data[0] if events[i].data else None
        if isinstance(data, torch.Tensor) and node.name in fuse_carry:
            out.setdefault(fuse_carry[node.name], (data, "intermediate", ""))
    return out


def patterns_per_call(convert_view: GraphView, fuse_view: GraphView) -> dict[str, int]:
    """Delegate call id -> how many convert-graph patterns were lowered into it."""
    delegated = diff_graphs(convert_view, fuse_view).delegated
    counts: dict[str, int] = {}
    for p in convert_view.patterns:
        call = delegated.get(p.anchor)
        if call is not None:
            counts[call] = counts.get(call, 0) + 1
    return counts


def _call_of(convert_view: GraphView, fuse_view: GraphView | None) -> dict[str, str]:
    if fuse_view is None:
        return {}
    return diff_graphs(convert_view, fuse_view).delegated


@dataclass
class _Series:
    """One pattern's values over the batches, per level (integers for quantized levels)."""

    float_: list[torch.Tensor]
    reference: list[torch.Tensor]
    fused: list[torch.Tensor]
    runtime: list[torch.Tensor]
    fused_local: list[torch.Tensor]
    runtime_local: list[torch.Tensor]


def _cat(xs: list[torch.Tensor]) -> torch.Tensor | None:
    return torch.cat([x.flatten() for x in xs]) if xs else None


def _max_lsb_int(a: torch.Tensor | None, b: torch.Tensor | None) -> float:
    if a is None or b is None or a.numel() != b.numel():
        return NAN
    return float((a - b).abs().max()) if a.numel() else 0.0


def _fill(row: BlameRow, s: _Series, zp: float) -> None:
    scale = row.scale

    def deq(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else (t.double() - zp) * scale

    f, r, fu, rt = _cat(s.float_), _cat(s.reference), _cat(s.fused), _cat(s.runtime)
    fl, rl = _cat(s.fused_local), _cat(s.runtime_local)
    if f is not None and r is not None and f.numel() == r.numel():
        row.float_vs_reference_sqnr_db = sqnr_db(f, deq(r))
        row.reference_max_lsb = float(lsb_errors(f, deq(r), scale).max()) if f.numel() else 0.0
    if r is not None and fu is not None and r.numel() == fu.numel():
        row.reference_vs_fused_sqnr_db = sqnr_db(deq(r), deq(fu))
        row.fused_max_lsb = _max_lsb_int(r, fu)
        row.fused_local_max_lsb = _max_lsb_int(fl, fu)
    if rt is not None and r is not None and rt.numel() == r.numel():
        row.reference_vs_runtime_sqnr_db = sqnr_db(deq(r), deq(rt))
        row.runtime_vs_reference_max_lsb = _max_lsb_int(r, rt)
        row.runtime_local_max_lsb = _max_lsb_int(rl, rt)
        if fu is not None and fu.numel() == rt.numel():
            row.fused_vs_runtime_sqnr_db = sqnr_db(deq(fu), deq(rt))
            row.runtime_max_lsb = _max_lsb_int(fu, rt)
    elif rt is not None:
        row.note = f"the runtime's value has {rt.numel()} elements, the reference's {r.numel() if r is not None else 0}"


def _fused_module(pipe: PipelineView) -> tuple[fx.GraphModule | None, str]:
    fuse = pipe.results.get(pipe.role("lowered") or "")
    if fuse is None or not fuse.ok:
        return None, "the fuse stage has no result"
    if pipe.flow.uses_quantviz_kernels(pipe.config):
        from quantviz_kernels import load

        load()
    return fuse.artifact.exported_program().module(), ""


def _runtime_ok(pipe: PipelineView) -> str:
    """Empty when the runtime can run the emitted program here, else why not."""

    emit, fuse = pipe.results.get(pipe.role("program") or ""), pipe.results.get(pipe.role("lowered") or "")
    if emit is None or not emit.ok:
        return "the emit stage has no .pte"
    blocked = runtime_preflight(fuse.artifact if fuse is not None and fuse.ok else None)
    return blocked.message if blocked is not None else ""


@dataclass
class _Setup:
    """What every batch of one blame run shares: the graphs, the pattern order, where each level keeps a value."""

    ref_gm: fx.GraphModule                      # the reference model (convert stage)
    cview: GraphView                            # its graph view (patterns, node ids)
    patterns: list                              # its patterns in execution order
    fgraph: fx.GraphModule                      # the float model as traced
    matches: dict[str, tuple]                   # activation quantize -> (float node, how), per_node.float_matches
    all_q: list[str]                            # every per-tensor quantize of the reference model
    fused_gm: fx.GraphModule | None             # the fuse stage's program, runnable ahead of time
    fused_carry: dict[str, str]                 # quantize -> the fuse stage's node carrying its value
    fused_why: str = ""                         # why the fused level has no values ("" when it has)
    runtime_why: str = ""                       # why the runtime level has no values ("" when it has)


def _setup(pipe: PipelineView, runtime_unavailable: str) -> _Setup:
    convert = pipe.results[pipe.role("reference")]
    cview = convert.graph
    order = {n.id: i for i, n in enumerate(cview.nodes)}
    fgraph = float_graph(pipe)
    fused_gm, fused_why = _fused_module(pipe)
    fused_carry = carriers(cview, pipe.results[pipe.role("lowered")].graph) if fused_gm is not None else {}
    reference = pipe.reference_module()  # convert's GraphModule, or the captured program's module()
    all_q = [n.name for n in reference.graph.nodes if "quantize_per_tensor" in str(n.target)
             and "dequantize" not in str(n.target)]
    setup = _Setup(reference, cview, sorted(cview.patterns, key=lambda p: order.get(p.anchor, 0)), fgraph,
                   float_matches(reference, fgraph), all_q, fused_gm, fused_carry, fused_why,
                   runtime_unavailable or _runtime_ok(pipe))
    if pipe.flow.uses_quantviz_kernels(pipe.config) and not setup.runtime_why:
        from quantviz_kernels import load

        load()
    return setup


def _local(setup: _Setup, batch: tuple, level: dict[str, torch.Tensor],
           qparams: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """The reference model's quantize outputs computed from ``level``'s values substituted at every quantize."""
    subs = {q: _as_int(level[q], *qparams[q]) for q in setup.all_q if q in level and q in qparams}
    return _run_batch(setup.ref_gm, batch, set(setup.all_q), subs)


def _one_batch(pipe: PipelineView, setup: _Setup, batch: tuple, events: list[RuntimeEvent] | None,
               series: dict[str, _Series], qparams: dict[str, tuple[float, float]],
               sources: dict[str, RuntimeSource], tapped: dict[str, torch.Tensor] | None = None) -> None:
    """Every level's value of every pattern output on ``batch``, appended to ``series`` (``tapped``: the tapped
    program's values, for the quantizes the program's own run does not expose)."""
    nodes = {n.name: n for n in setup.ref_gm.graph.nodes}
    ref = capture_values(setup.ref_gm, _inputs(batch))
    qparams.update({q: _qparams(nodes[q], ref) for q in setup.all_q})
    flt = _run_batch(setup.fgraph, batch, {end.name for end, _ in setup.matches.values() if end is not None})
    fused: dict[str, torch.Tensor] = {}
    fused_local: dict[str, Any] = {}
    if setup.fused_gm is not None and not setup.fused_why:
        try:
            fused = _level_values(setup.fused_gm, batch, setup.fused_carry)
            fused_local = _local(setup, batch, fused, qparams)
        except Exception as exc:  # noqa: BLE001 - a program that cannot run ahead of time: say why, go on
            setup.fused_why, fused = f"the fused program does not run ahead of time: {exc}", {}
    runtime: dict[str, torch.Tensor] = {}
    runtime_local: dict[str, Any] = {}
    if not setup.runtime_why:
        emit = pipe.results[pipe.role("program")].artifact
        evs = events if events is not None else runtime_events(emit.buffer, batch, debug_buffer_size(emit))
        found = runtime_values(pipe, evs, setup.cview)
        for q, value in (tapped or {}).items():
            found.setdefault(q, (value, "tap", ""))
        runtime = {q: v for q, (v, _, _) in found.items()}
        sources.update({q: src for q, (_, src, _) in found.items()})
        runtime_local = _local(setup, batch, runtime, qparams)
    for p in setup.patterns:
        q = p.output_q
        if not q or q not in qparams:
            continue
        s = series[p.id]
        end = setup.matches.get(q, (None, ""))[0]
        if end is not None and isinstance(flt.get(end.name), torch.Tensor):
            s.float_.append(flt[end.name].double())
        s.reference.append(ref[q].long())
        for level, local, into, into_local in ((fused, fused_local, s.fused, s.fused_local),
                                               (runtime, runtime_local, s.runtime, s.runtime_local)):
            if q in level and level[q].numel() == ref[q].numel():
                into.append(_as_int(level[q], *qparams[q]).reshape(ref[q].shape))
                into_local.append(local[q].long())


def _weight_qparams(view: GraphView, p) -> str:
    """The label of the pattern's weight dequantize (one fed by a parameter), or ""."""
    def node(node_id: str):
        try:
            return view.node(node_id)
        except KeyError:
            return None

    for dq in p.input_dqs:
        n = view.node(dq)
        src = node(n.inputs[0]) if n.inputs else None
        if src is not None and src.kind == "quantize" and src.inputs:
            src = node(src.inputs[0])
        if src is not None and src.kind == "parameter" and n.qparams is not None:
            return n.qparams.label()
    return ""


def _row(p, order: int, setup: _Setup, s: _Series, qparams: dict[str, tuple[float, float]], source: RuntimeSource,
         delegate: str) -> BlameRow:
    row = BlameRow(p.anchor, p.id, p.module_path or "", "+".join(p.ops), order, p.output_q or "", delegate=delegate)
    row.weight_qparams = _weight_qparams(setup.cview, p)
    if not p.output_q or p.output_q not in qparams:
        row.note = "no output quantize (dynamic quantization or a float output): nothing to count LSB in"
        if "per-group" in row.weight_qparams:
            row.note += f"; the weight is {row.weight_qparams}: one LSB per group of input channels, per row"
        return row
    row.scale = qparams[p.output_q][0]
    _fill(row, s, qparams[p.output_q][1])
    if s.runtime:
        row.runtime_source = source
    elif not row.note:
        row.note = ("the runtime did not run: " + setup.runtime_why if setup.runtime_why else
                    "the runtime does not expose this value (inside a delegate of several ops: use "
                    "--delegate-granularity op)" if delegate else
                    "no node of the emitted program carries this value (matched by provenance)")
    if not s.fused and setup.fused_why:
        row.note = (row.note + "; " if row.note else "") + setup.fused_why
    return row


def blame_table(pipe: PipelineView, batches: list[tuple], events: list[list[RuntimeEvent]] | None = None,
                runtime_unavailable: str = "", tapped: list[dict[str, torch.Tensor]] | None = None) -> list[BlameRow]:
    """One row per quantized pattern of the convert stage, in execution order, on ``batches``.

    ``tapped`` (one dict per batch, ``taps.tap_runtime``'s ``values``) gives the runtime's value of quantizes
    inside delegates of several patterns, where the program's own run exposes none.

    ``events`` (one list per batch) are the runtime's, when already read (``runtime_events``); tests plant a wrong
    delegate output through them. Without them the runtime runs once per batch with an ETDump.
    ``runtime_unavailable`` (why the runtime did not run) leaves the runtime columns empty.
    """
    setup = _setup(pipe, runtime_unavailable)
    series = {p.id: _Series([], [], [], [], [], []) for p in setup.patterns}
    qparams: dict[str, tuple[float, float]] = {}
    sources: dict[str, RuntimeSource] = {}
    for b, batch in enumerate(batches):
        _one_batch(pipe, setup, batch, events[b] if events is not None else None, series, qparams, sources,
                   tapped[b] if tapped is not None and b < len(tapped) else None)
    calls = _call_of(setup.cview, pipe.results[pipe.role("lowered")].graph if setup.fused_gm is not None else None)
    rows = [_row(p, i, setup, series[p.id], qparams, sources.get(p.output_q or "", ""), calls.get(p.anchor, ""))
            for i, p in enumerate(setup.patterns)]
    first = next((r for r in rows if r.runtime_local_max_lsb > DIVERGENCE_LSB), None)
    if first is not None:
        first.first_divergence = True
    return rows


def _delegate_rows(rows: list[BlameRow]) -> dict[str, BlameRow]:
    """Delegate call id -> the row of its worst pattern (largest runtime local error; the first divergence wins)."""
    out: dict[str, BlameRow] = {}

    def badness(r: BlameRow) -> tuple:
        v = r.runtime_local_max_lsb
        return (r.first_divergence, -math.inf if v != v else v)

    for r in rows:
        call = r.delegate
        if call and (call not in out or badness(r) > badness(out[call])):
            out[call] = r
    return out


def blame_by_stage(pipe: PipelineView, rows: list[BlameRow]) -> dict[str, dict[str, BlameRow]]:
    """For each stage's graph (convert, capture, edge, delegate, fuse, emit), node id -> blame row, by provenance.

    Every member of a pattern (its input dequantizes, ops and output quantize) maps to the pattern's row in the
    convert graph; in later graphs, every node descended from one of them (``diff_graphs``' lineage match, nodes
    inside delegate subgraphs included), each fused op, and each delegate call (its worst pattern's row).

    Example::

        by_stage = blame_by_stage(pipe, report.blame)
        by_stage["convert"]["conv2d"].fused_vs_runtime_sqnr_db
    """
    convert = pipe.results.get(pipe.role("reference") or "")
    if convert is None or not convert.ok:
        return {}
    cview = convert.graph
    by_pattern = {r.pattern: r for r in rows}
    member_row: dict[str, BlameRow] = {}
    for p in cview.patterns:
        if p.id in by_pattern:
            for m in p.members:
                member_row.setdefault(m, by_pattern[p.id])
    out: dict[str, dict[str, BlameRow]] = {pipe.role("reference"): dict(member_row)}
    for stage in _later_graph_stages(pipe):
        result = pipe.results.get(stage)
        if result is None or not result.ok or result.graph is None:
            continue
        d = diff_graphs(cview, result.graph)
        mapped: dict[str, BlameRow] = {}
        for a, b in d.kept:
            if a in member_row:
                mapped.setdefault(b, member_row[a])
        for fused_op, pattern in d.fused.items():
            if pattern in by_pattern:
                mapped.setdefault(fused_op, by_pattern[pattern])
        for q, node in carriers(cview, result.graph).items():  # fused ops, and quantizes of fx-flow graphs
            if q in member_row:
                mapped.setdefault(node, member_row[q])
        for call in d.delegate_calls:  # by the patterns lowered into it
            inside = [replace(by_pattern[p.id], delegate=call) for p in cview.patterns
                      if d.delegated.get(p.anchor) == call and p.id in by_pattern]
            if inside:
                mapped[call] = by_pattern[_delegate_rows(inside)[call].pattern]
        out[stage] = mapped
    return out


def _later_graph_stages(pipe: PipelineView) -> tuple[str, ...]:
    """The stages after the flow's reference stage whose programs carry the reference's nodes (every stage with a
    graph up to the program: capture, edge, delegate, fuse, emit in the pt2e flow)."""
    flow = pipe.flow
    reference, program = flow.roles.get("reference"), flow.roles.get("program")
    if reference is None or program is None:
        return ()
    return flow.names[flow.index(reference) + 1: flow.index(program) + 1]
