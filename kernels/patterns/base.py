"""What a lowering pattern is, and the pieces every pattern file uses.

A :class:`FusionPattern` pairs a *pattern* (the reference form: dequantize -> float op(s) -> quantize, written with
ATen and ``quantized_decomposed`` ops and lowered to Edge ops when traced) with its *replacement* (one ``quantviz``
op). Both take the same arguments; every scale, zero point, range and dtype is an argument, never a literal, so one
pattern matches int8 and uint8 graphs alike (a placeholder used twice must see the same value: the input and output
dtypes agree). ``check`` refuses a match with a reason; ``finalize`` adjusts the new node, for example to fold a
ReLU into the output's clamp range.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import fx

qd = torch.ops.quantized_decomposed
aten = torch.ops.aten


def dq(x, scale, zero_point, qmin, qmax, dtype):
    return qd.dequantize_per_tensor.default(x, scale, zero_point, qmin, qmax, dtype)


def dq_channel(w, scales, zero_points, axis, qmin, qmax, dtype):
    return qd.dequantize_per_channel.default(w, scales, zero_points, axis, qmin, qmax, dtype)


def q(x, scale, zero_point, qmin, qmax, dtype):
    return qd.quantize_per_tensor.default(x, scale, zero_point, qmin, qmax, dtype)


def qv():
    """``torch.ops.quantviz`` (needs the kernel library loaded)."""
    return torch.ops.quantviz


Values = dict[str, Any]  # pattern placeholder name -> the node or literal it matched


@dataclass(frozen=True)
class FusionPattern:
    name: str                                   # e.g. "conv2d_relu"
    op: str                                     # the operator it lowers to, e.g. "quantviz::conv2d"
    pattern: Callable[..., Any]
    replacement: Callable[..., Any]
    check: Callable[[Values], str | None] = field(default=lambda v: None)  # a reason to refuse, or None
    finalize: Callable[[fx.Node, Values], None] = field(default=lambda n, v: None)


def trace_edge(fn: Callable[..., Any]) -> fx.GraphModule:
    """Symbolically trace ``fn`` and turn its ATen/custom ops into Edge dialect ops, as the graphs have them."""
    from executorch.exir.passes.replace_aten_with_edge_pass import aten_to_edge, should_lower_to_edge

    gm = fx.symbolic_trace(fn)
    for node in gm.graph.nodes:
        if node.op == "call_function" and should_lower_to_edge(node.target):
            node.target = aten_to_edge(node.target)
    gm.recompile()
    return gm


# ---- checks and activation folding shared by several patterns -------------------------------------------------
def shape(v: Any) -> tuple[int, ...] | None:
    val = getattr(v, "meta", {}).get("val") if isinstance(v, fx.Node) else None
    return tuple(val.shape) if val is not None else None


def quantize_scalar(x: float, scale: float, zero_point: int, qmin: int, qmax: int) -> int:
    """quantize_per_tensor of one float value, in float32 as the reference computes it."""
    if x == float("inf"):
        return qmax
    if x == float("-inf"):
        return qmin
    y = np.float32(x) * np.float32(1.0 / scale)
    return int(min(max(float(np.round(y)) + zero_point, qmin), qmax))


def fold_clamp(node: fx.Node, lo: float, hi: float, scale_arg: int) -> None:
    """Fold clamp(x, lo, hi) before the output quantize into the op's output range (args scale, zp, qmin, qmax
    from ``scale_arg`` on): quantize is monotonic, so quantize(clamp(x, lo, hi)) equals
    clamp(quantize(x), quantize(lo), quantize(hi)) exactly."""
    args = list(node.args)
    scale, zp, qmin, qmax = args[scale_arg:scale_arg + 4]
    args[scale_arg + 2] = max(qmin, quantize_scalar(lo, scale, zp, qmin, qmax))
    args[scale_arg + 3] = min(qmax, quantize_scalar(hi, scale, zp, qmin, qmax))
    node.args = tuple(args)
