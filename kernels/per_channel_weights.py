"""Rewrite per-tensor weight dequantizes into per-channel form, so one conv/linear pattern covers both.

Pattern and replacement::

    dequantize_per_tensor(w_int8, s, zp, qmin, qmax, int8)                          # before
    dequantize_per_channel(w_int8, full([C], s), full([C], zp), 0, qmin, qmax, int8) # after

The two compute the same float32 values ((w - zp) * float(s)). The scale and zero-point tensors are new
constants of the program. Only weights (constant inputs) feeding a convolution or a permute_copy are rewritten.

Example::

    rewritten = per_channel_weights(exported_program)   # edits the program in place
"""
from __future__ import annotations

import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind


def _is_constant(ep: ExportedProgram, node: torch.fx.Node) -> bool:
    sig = ep.graph_signature
    return node.op == "placeholder" and (
        node.name in sig.inputs_to_parameters or node.name in sig.inputs_to_buffers
        or node.name in sig.inputs_to_lifted_tensor_constants)


def _feeds_weight(node: torch.fx.Node) -> bool:
    for user in node.users:
        name = str(user.target)
        if "convolution" in name and user.args[1] is node:
            continue
        if "permute_copy" in name:
            continue
        return False
    return bool(node.users)


def per_channel_weights(ep: ExportedProgram) -> int:
    """Returns how many weight dequantizes were rewritten."""
    from executorch.backends.transforms.utils import create_constant_placeholder
    from executorch.exir.dialects._ops import ops as exir_ops

    dq_tensor = exir_ops.edge.quantized_decomposed.dequantize_per_tensor.default
    dq_channel = exir_ops.edge.quantized_decomposed.dequantize_per_channel.default
    graph = ep.graph
    first_input = next(n for n in graph.nodes if n.op == "placeholder" and n.name in ep.graph_signature.user_inputs)
    rewritten = 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target != dq_tensor or len(node.args) != 6:
            continue
        w, scale, zp, qmin, qmax, dtype = node.args
        if not isinstance(w, torch.fx.Node) or not _is_constant(ep, w) or dtype != torch.int8 \
                or not isinstance(scale, float) or not isinstance(zp, int) or not _feeds_weight(node):
            continue
        channels = w.meta["val"].shape[0]
        with graph.inserting_before(first_input):
            scales = create_constant_placeholder(ep, graph, f"{w.name}_qv_scales", InputKind.CONSTANT_TENSOR,
                                                 torch.full((channels,), scale, dtype=torch.float32))
            zero_points = create_constant_placeholder(ep, graph, f"{w.name}_qv_zero_points",
                                                      InputKind.CONSTANT_TENSOR,
                                                      torch.full((channels,), zp, dtype=torch.int64))
        with graph.inserting_before(node):
            new = graph.call_function(dq_channel, (w, scales, zero_points, 0, qmin, qmax, dtype))
        new.meta = dict(node.meta)
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        rewritten += 1
    if rewritten:
        ep.graph_module.recompile()
    return rewritten
