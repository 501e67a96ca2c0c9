"""Fold ``quantize(constant weight)`` into an int8 constant, leaving the dequantize in the graph.

``convert_pt2e`` does this itself (``fold_quantize=True``); the fx flow's reference model
quantizes its float weights at run time instead. Folding stores int8 weights in the ``.pte``.

Pattern and replacement::

    w(float) -> quantize_per_tensor(w, s, zp, ...) -> dequantize(...)      # before
    w_q(int8 constant)                             -> dequantize(...)      # after

Example::

    ep, folded = fold_weight_quantize(ep)
"""
from __future__ import annotations

import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401  registers the quantized_decomposed ops named below
from torch.export import ExportedProgram

_qd = torch.ops.quantized_decomposed
# Everything except quantize may stay: folding a dequantize would turn int8 weights back into float.
_KEEP = {
    _qd.dequantize_per_tensor.default, _qd.dequantize_per_tensor.tensor, _qd.dequantize_per_channel.default,
    _qd.choose_qparams.tensor, torch.ops.aten.full.default,
}


def _count_quantize(ep: ExportedProgram) -> int:
    return sum(1 for n in ep.graph.nodes if n.op == "call_function" and "quantize_per" in str(n.target)
               and "dequantize" not in str(n.target))


def fold_weight_quantize(ep: ExportedProgram) -> tuple[ExportedProgram, int]:
    """Returns the program and how many quantize ops were folded."""
    from executorch.exir.passes.constant_prop_pass import constant_prop_pass

    before = _count_quantize(ep)
    ep = constant_prop_pass(ep, custom_skip_targets=_KEEP)
    return ep, before - _count_quantize(ep)
