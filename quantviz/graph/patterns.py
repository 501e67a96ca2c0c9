"""Find reference quantized patterns (dq inputs -> float op [-> activation] -> q) in a GraphView.

Works on the plain graph model, so it reads any stage the same way::

    patterns = find_patterns(view.nodes)
    [p.label() for p in patterns]   # ["dq → convolution → q", "dq → add → relu → q"]
"""
from __future__ import annotations

from quantviz.graph.kinds import op_name
from quantviz.graph.model import NodeView, PatternInstance

# Ops that may follow the anchor op inside one pattern (the quantizer annotates op+activation as one unit).
ACTIVATION_TAILS = {"relu", "relu_", "hardtanh", "hardtanh_", "relu6", "clamp", "ReLU", "ReLU6", "Hardtanh"}


def node_op(n: NodeView) -> str:
    """The float op a node computes: ``convolution``, ``add``, ``linear`` (modules by their type)."""
    if n.op == "call_module" and n.module_type:
        return n.module_type.lower()
    if n.op == "call_method":
        return n.target
    return op_name(n.target)


def find_patterns(nodes: list[NodeView]) -> list[PatternInstance]:
    """Every float op with a dequantized input and a quantized output (or a dynamic/weight dq input, as dynamic
    and weight-only quantization have), with its trailing activation."""
    by_id = {n.id: n for n in nodes}
    users: dict[str, list[str]] = {n.id: [] for n in nodes}
    for n in nodes:
        for i in n.inputs:
            if i in users:
                users[i].append(n.id)

    def output_quantizes(node_id: str) -> list[str]:
        # a dynamic quantize (scale from choose_qparams) starts the next pattern; it is not this one's output
        return [u for u in users[node_id] if by_id[u].kind == "quantize"
                and not (by_id[u].qparams and by_id[u].qparams.scheme == "dynamic")]

    def is_dynamic_or_weight(dq_id: str) -> bool:
        dq = by_id[dq_id]
        if dq.qparams and dq.qparams.scheme == "dynamic":
            return True
        src = by_id.get(dq.inputs[0]) if dq.inputs else None
        if src is not None and src.kind == "quantize" and src.inputs:
            src = by_id.get(src.inputs[0])
        return src is not None and src.kind == "parameter"

    taken: set[str] = set()
    patterns: list[PatternInstance] = []
    for n in nodes:
        if n.kind != "float_op" or n.id in taken:
            continue
        dqs = [i for i in dict.fromkeys(n.inputs) if i in by_id and by_id[i].kind == "dequantize"]
        if not dqs:
            continue
        chain = [n]
        cur = n
        while len(users[cur.id]) == 1:
            nxt = by_id[users[cur.id][0]]
            if nxt.kind == "float_op" and node_op(nxt) in ACTIVATION_TAILS and len(nxt.inputs) >= 1:
                chain.append(nxt)
                cur = nxt
            else:
                break
        qs = output_quantizes(cur.id)
        if len(chain) > 1 and not qs:  # an activation with no quantize after it is not part of this pattern
            chain, cur = [n], n
            qs = output_quantizes(n.id)
        out_q = qs[0] if qs else None
        if out_q is None and not any(is_dynamic_or_weight(d) for d in dqs):
            continue  # a float op reading a dequantized value at a quantization boundary: not a quantized op
        taken.update(c.id for c in chain)
        dynamic = [m for d in dqs for m in _dynamic_chain(by_id, users, d)]
        members = dynamic + dqs + [c.id for c in chain] + ([out_q] if out_q else [])
        qref = by_id[out_q] if out_q else by_id[dqs[0]]
        ops = [node_op(c) for c in chain]
        patterns.append(PatternInstance(
            id=f"p{len(patterns)}", op=ops[0], ops=ops, anchor=n.id, input_dqs=dqs, output_q=out_q,
            members=members, dtype=qref.qparams.dtype if qref.qparams else None,
            module_path=n.module_path, source=n.source))
    return patterns


def _dynamic_chain(by_id: dict[str, NodeView], users: dict[str, list[str]], dq_id: str) -> list[str]:
    """For a dequantize of a dynamically quantized activation, the nodes that quantize it at run time and serve only
    it: its quantize, the ``getitem``s of the scale and zero point and the ``choose_qparams`` they come from (pt2e's
    ``choose_qparams.tensor`` and torchao's ``choose_qparams_affine`` alike), so a dynamic linear is one pattern."""
    dq = by_id[dq_id]
    if not (dq.qparams and dq.qparams.scheme == "dynamic") or not dq.inputs:
        return []
    q = by_id.get(dq.inputs[0])
    if q is None or q.kind != "quantize" or users.get(q.id) != [dq_id]:
        return []
    chain = [q.id]
    for i in q.inputs[1:]:
        n = by_id.get(i)
        if n is None or not n.target.startswith("operator.getitem") or not n.inputs:
            continue
        source = by_id.get(n.inputs[0])
        if source is not None and source.kind == "choose_qparams":
            chain.append(n.id)
            if source.id not in chain:
                chain.append(source.id)
    return chain
