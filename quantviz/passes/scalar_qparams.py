"""Turn ``quantize/dequantize_per_tensor.tensor`` with constant one-element scale and zero point
into the ``.default`` overload with plain numbers.

The fx flow's reference model keeps weight qparams in float32 buffers; ExecuTorch's runtime
``dequantize_per_tensor.Tensor_out`` requires a float64 scale tensor and rejects them
(``Expected scale to be Double tensor``, error 0x12). pt2e graphs already use scalars.

Pattern and replacement::

    dequantize_per_tensor.tensor(x, scale_buffer, zp_buffer, qmin, qmax, dtype)   # before
    dequantize_per_tensor.default(x, 0.0123, 0, qmin, qmax, dtype)                # after

Example::

    ep, rewritten = scalar_qparams(ep)
"""
from __future__ import annotations

from typing import Any

import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401  registers the quantized_decomposed ops named below
from torch import fx
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind

_qd = torch.ops.quantized_decomposed
_REWRITE = {
    _qd.quantize_per_tensor.tensor: _qd.quantize_per_tensor.default,
    _qd.dequantize_per_tensor.tensor: _qd.dequantize_per_tensor.default,
}


def _constant(ep: ExportedProgram, node: Any) -> torch.Tensor | None:
    if not isinstance(node, fx.Node) or node.op != "placeholder":
        return None
    for spec in ep.graph_signature.input_specs:
        if spec.kind != InputKind.USER_INPUT and getattr(spec.arg, "name", None) == node.name:
            value = ep.state_dict.get(spec.target, ep.constants.get(spec.target))
            return value if isinstance(value, torch.Tensor) else None
    return None


def scalar_qparams(ep: ExportedProgram) -> tuple[ExportedProgram, int]:
    """Rewrites in place; returns the program and how many nodes changed."""
    changed = 0
    for node in ep.graph.nodes:
        if node.op != "call_function" or node.target not in _REWRITE:
            continue
        scale, zp = _constant(ep, node.args[1]), _constant(ep, node.args[2])
        if scale is None or zp is None or scale.numel() != 1 or zp.numel() != 1:
            continue
        node.target = _REWRITE[node.target]
        node.args = (node.args[0], float(scale.item()), int(zp.item()), *node.args[3:])
        changed += 1
    if changed:
        ep.graph_module.recompile()
    return ep, changed
