"""Reshapes: dequantize -> view_copy -> quantize with the same qparams on both sides  ==>  view_copy on the
integers. A reshape moves values without changing them, so the q/dq pair around it is an identity; using one set
of placeholders for both sides makes the matcher insist that the qparams agree."""
from __future__ import annotations

from quantviz_kernels.patterns.base import FusionPattern, aten, dq, q


def pattern(x, scale, zp, qmin, qmax, dtype, size):
    return q(aten.view_copy.default(dq(x, scale, zp, qmin, qmax, dtype), size), scale, zp, qmin, qmax, dtype)


def replacement(x, scale, zp, qmin, qmax, dtype, size):
    return aten.view_copy.default(x, size)


ORDER = 90  # place in patterns.ALL
PATTERNS = [FusionPattern("view_copy", "aten::view_copy (integer)", pattern, replacement)]
