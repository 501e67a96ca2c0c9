"""Clamps in the integer domain: dequantize -> relu / hardtanh(min, max) -> quantize  ==>  quantviz.hardtanh."""
from __future__ import annotations

from quantviz_kernels.patterns.base import FusionPattern, aten, dq, q, qv


def pattern(x, x_scale, x_zp, x_qmin, x_qmax, dtype, min_val, max_val, out_scale, out_zp, out_qmin, out_qmax):
    y = aten.hardtanh.default(dq(x, x_scale, x_zp, x_qmin, x_qmax, dtype), min_val, max_val)
    return q(y, out_scale, out_zp, out_qmin, out_qmax, dtype)


def replacement(x, x_scale, x_zp, x_qmin, x_qmax, dtype, min_val, max_val, out_scale, out_zp, out_qmin, out_qmax):
    return qv().hardtanh.default(x, x_scale, x_zp, x_qmin, x_qmax, min_val, max_val,
                                 out_scale, out_zp, out_qmin, out_qmax)


def relu_pattern(x, x_scale, x_zp, x_qmin, x_qmax, dtype, out_scale, out_zp, out_qmin, out_qmax):
    y = aten.relu.default(dq(x, x_scale, x_zp, x_qmin, x_qmax, dtype))
    return q(y, out_scale, out_zp, out_qmin, out_qmax, dtype)


def relu_replacement(x, x_scale, x_zp, x_qmin, x_qmax, dtype, out_scale, out_zp, out_qmin, out_qmax):
    return qv().hardtanh.default(x, x_scale, x_zp, x_qmin, x_qmax, 0.0, float("inf"),
                                 out_scale, out_zp, out_qmin, out_qmax)


ORDER = 80  # place in patterns.ALL: standalone activations: after every op that swallows one
PATTERNS = [
    FusionPattern("hardtanh", "quantviz::hardtanh", pattern, replacement),
    FusionPattern("relu", "quantviz::hardtanh", relu_pattern, relu_replacement),
]
