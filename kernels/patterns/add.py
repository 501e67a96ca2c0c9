"""add: dequantize(a), dequantize(b) -> aten.add -> quantize  ==>  quantviz.add (and add -> relu ==> add_relu)."""
from __future__ import annotations

from quantviz_kernels.patterns.base import FusionPattern, Values, aten, dq, q, qv, shape


def pattern(a, a_scale, a_zp, a_qmin, a_qmax, b, b_scale, b_zp, b_qmin, b_qmax,
            out_scale, out_zp, out_qmin, out_qmax, dtype):
    y = aten.add.Tensor(dq(a, a_scale, a_zp, a_qmin, a_qmax, dtype), dq(b, b_scale, b_zp, b_qmin, b_qmax, dtype))
    return q(y, out_scale, out_zp, out_qmin, out_qmax, dtype)


def replacement(a, a_scale, a_zp, a_qmin, a_qmax, b, b_scale, b_zp, b_qmin, b_qmax,
                out_scale, out_zp, out_qmin, out_qmax, dtype):
    return qv().add.default(a, a_scale, a_zp, a_qmin, a_qmax, b, b_scale, b_zp, b_qmin, b_qmax,
                            out_scale, out_zp, out_qmin, out_qmax)


def relu_pattern(a, a_scale, a_zp, a_qmin, a_qmax, b, b_scale, b_zp, b_qmin, b_qmax,
                 out_scale, out_zp, out_qmin, out_qmax, dtype):
    y = aten.add.Tensor(dq(a, a_scale, a_zp, a_qmin, a_qmax, dtype), dq(b, b_scale, b_zp, b_qmin, b_qmax, dtype))
    return q(aten.relu.default(y), out_scale, out_zp, out_qmin, out_qmax, dtype)


def relu_replacement(a, a_scale, a_zp, a_qmin, a_qmax, b, b_scale, b_zp, b_qmin, b_qmax,
                     out_scale, out_zp, out_qmin, out_qmax, dtype):
    return qv().add_relu.default(a, a_scale, a_zp, a_qmin, a_qmax, b, b_scale, b_zp, b_qmin, b_qmax,
                                 out_scale, out_zp, out_qmin, out_qmax)


def same_shape(v: Values) -> str | None:
    if shape(v["a"]) != shape(v["b"]):
        return f"inputs have different shapes {shape(v['a'])} and {shape(v['b'])} (the kernel does not broadcast)"
    return None


ORDER = 30  # place in patterns.ALL: add_relu swallows relu
PATTERNS = [
    FusionPattern("add_relu", "quantviz::add_relu", relu_pattern, relu_replacement, same_shape),
    FusionPattern("add", "quantviz::add", pattern, replacement, same_shape),
]
