"""mul: dequantize(a), dequantize(b) -> aten.mul -> quantize  ==>  quantviz.mul."""
from __future__ import annotations

from quantviz_kernels.patterns.add import same_shape
from quantviz_kernels.patterns.base import FusionPattern, aten, dq, q, qv


def pattern(a, a_scale, a_zp, a_qmin, a_qmax, b, b_scale, b_zp, b_qmin, b_qmax,
            out_scale, out_zp, out_qmin, out_qmax, dtype):
    y = aten.mul.Tensor(dq(a, a_scale, a_zp, a_qmin, a_qmax, dtype), dq(b, b_scale, b_zp, b_qmin, b_qmax, dtype))
    return q(y, out_scale, out_zp, out_qmin, out_qmax, dtype)


def replacement(a, a_scale, a_zp, a_qmin, a_qmax, b, b_scale, b_zp, b_qmin, b_qmax,
                out_scale, out_zp, out_qmin, out_qmax, dtype):
    return qv().mul.default(a, a_scale, a_zp, a_qmin, a_qmax, b, b_scale, b_zp, b_qmin, b_qmax,
                            out_scale, out_zp, out_qmin, out_qmax)


ORDER = 40  # place in patterns.ALL
PATTERNS = [FusionPattern("mul", "quantviz::mul", pattern, replacement, same_shape)]
