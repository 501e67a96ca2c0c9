"""linear: Edge lowers nn.Linear on 2-D inputs to permute_copy(w) + addmm (mm without a bias), so
dequantize(x), dequantize_per_channel(w) -> permute_copy -> addmm/mm [-> relu] -> quantize  ==>  quantviz.linear.
"""
from __future__ import annotations

from quantviz_kernels.patterns.base import FusionPattern, Values, aten, dq, dq_channel, fold_clamp, q, qv, shape

OUT_SCALE_ARG = 9  # position of out_scale in quantviz::linear


def _wt(w, w_scales, w_zps, w_axis, w_qmin, w_qmax, w_dtype, perm):
    return aten.permute_copy.default(dq_channel(w, w_scales, w_zps, w_axis, w_qmin, w_qmax, w_dtype), perm)


def pattern(x, x_scale, x_zp, x_qmin, x_qmax, dtype, w, w_scales, w_zps, w_axis, w_qmin, w_qmax, w_dtype, perm,
            bias, out_scale, out_zp, out_qmin, out_qmax):
    y = aten.addmm.default(bias, dq(x, x_scale, x_zp, x_qmin, x_qmax, dtype),
                           _wt(w, w_scales, w_zps, w_axis, w_qmin, w_qmax, w_dtype, perm))
    return q(y, out_scale, out_zp, out_qmin, out_qmax, dtype)


def relu_pattern(x, x_scale, x_zp, x_qmin, x_qmax, dtype, w, w_scales, w_zps, w_axis, w_qmin, w_qmax, w_dtype, perm,
                 bias, out_scale, out_zp, out_qmin, out_qmax):
    y = aten.addmm.default(bias, dq(x, x_scale, x_zp, x_qmin, x_qmax, dtype),
                           _wt(w, w_scales, w_zps, w_axis, w_qmin, w_qmax, w_dtype, perm))
    return q(aten.relu.default(y), out_scale, out_zp, out_qmin, out_qmax, dtype)


def replacement(x, x_scale, x_zp, x_qmin, x_qmax, dtype, w, w_scales, w_zps, w_axis, w_qmin, w_qmax, w_dtype, perm,
                bias, out_scale, out_zp, out_qmin, out_qmax):
    return qv().linear.default(x, x_scale, x_zp, x_qmin, x_qmax, w, w_scales, w_zps, bias,
                               out_scale, out_zp, out_qmin, out_qmax)


def nobias_pattern(x, x_scale, x_zp, x_qmin, x_qmax, dtype, w, w_scales, w_zps, w_axis, w_qmin, w_qmax, w_dtype,
                   perm, out_scale, out_zp, out_qmin, out_qmax):
    y = aten.mm.default(dq(x, x_scale, x_zp, x_qmin, x_qmax, dtype),
                        _wt(w, w_scales, w_zps, w_axis, w_qmin, w_qmax, w_dtype, perm))
    return q(y, out_scale, out_zp, out_qmin, out_qmax, dtype)


def nobias_relu_pattern(x, x_scale, x_zp, x_qmin, x_qmax, dtype, w, w_scales, w_zps, w_axis, w_qmin, w_qmax,
                        w_dtype, perm, out_scale, out_zp, out_qmin, out_qmax):
    y = aten.mm.default(dq(x, x_scale, x_zp, x_qmin, x_qmax, dtype),
                        _wt(w, w_scales, w_zps, w_axis, w_qmin, w_qmax, w_dtype, perm))
    return q(aten.relu.default(y), out_scale, out_zp, out_qmin, out_qmax, dtype)


def nobias_replacement(x, x_scale, x_zp, x_qmin, x_qmax, dtype, w, w_scales, w_zps, w_axis, w_qmin, w_qmax,
                       w_dtype, perm, out_scale, out_zp, out_qmin, out_qmax):
    return qv().linear.default(x, x_scale, x_zp, x_qmin, x_qmax, w, w_scales, w_zps, None,
                               out_scale, out_zp, out_qmin, out_qmax)


def check(v: Values) -> str | None:
    import torch

    if list(v["perm"]) != [1, 0]:
        return f"weight permutation {list(v['perm'])} is not a transpose"
    if v["w_axis"] != 0 or v["w_dtype"] != torch.int8 or v["w_zps"] is None:
        return "weights are not int8 quantized along the output-feature axis"
    if len(shape(v["x"]) or ()) != 2:
        return f"input is not 2-D (shape {shape(v['x'])})"
    return None


def _relu(n, v):
    fold_clamp(n, 0.0, float("inf"), OUT_SCALE_ARG)


ORDER = 20  # place in patterns.ALL: swallows relu
PATTERNS = [
    FusionPattern("linear_relu", "quantviz::linear", relu_pattern, replacement, check, _relu),
    FusionPattern("linear", "quantviz::linear", pattern, replacement, check),
    FusionPattern("linear_nobias_relu", "quantviz::linear", nobias_relu_pattern, nobias_replacement, check, _relu),
    FusionPattern("linear_nobias", "quantviz::linear", nobias_pattern, nobias_replacement, check),
]
