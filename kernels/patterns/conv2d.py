"""conv2d: dequantize(x), dequantize_per_channel(w) -> aten.convolution [-> relu | hardtanh] -> quantize
==>  quantviz.conv2d, a ReLU or hardtanh folded into the output's clamp range (exact: see base.fold_clamp).

Per-tensor weights are first rewritten into per-channel form (``quantviz_kernels.per_channel_weights``), so these
patterns cover both.
"""
from __future__ import annotations

from quantviz_kernels.patterns.base import FusionPattern, Values, aten, dq, dq_channel, fold_clamp, q, qv, shape

OUT_SCALE_ARG = 13  # position of out_scale in quantviz::conv2d


def _conv(x, x_scale, x_zp, x_qmin, x_qmax, dtype, w, w_scales, w_zps, w_axis, w_qmin, w_qmax, w_dtype, bias,
          stride, padding, dilation, transposed, output_padding, groups):
    return aten.convolution.default(dq(x, x_scale, x_zp, x_qmin, x_qmax, dtype),
                                    dq_channel(w, w_scales, w_zps, w_axis, w_qmin, w_qmax, w_dtype),
                                    bias, stride, padding, dilation, transposed, output_padding, groups)


def pattern(x, x_scale, x_zp, x_qmin, x_qmax, dtype, w, w_scales, w_zps, w_axis, w_qmin, w_qmax, w_dtype, bias,
            stride, padding, dilation, transposed, output_padding, groups, out_scale, out_zp, out_qmin, out_qmax):
    y = _conv(x, x_scale, x_zp, x_qmin, x_qmax, dtype, w, w_scales, w_zps, w_axis, w_qmin, w_qmax, w_dtype, bias,
              stride, padding, dilation, transposed, output_padding, groups)
    return q(y, out_scale, out_zp, out_qmin, out_qmax, dtype)


def replacement(x, x_scale, x_zp, x_qmin, x_qmax, dtype, w, w_scales, w_zps, w_axis, w_qmin, w_qmax, w_dtype, bias,
                stride, padding, dilation, transposed, output_padding, groups, out_scale, out_zp, out_qmin,
                out_qmax):
    return qv().conv2d.default(x, x_scale, x_zp, x_qmin, x_qmax, w, w_scales, w_zps, bias, stride, padding,
                               dilation, groups, out_scale, out_zp, out_qmin, out_qmax)


def relu_pattern(x, x_scale, x_zp, x_qmin, x_qmax, dtype, w, w_scales, w_zps, w_axis, w_qmin, w_qmax, w_dtype,
                 bias, stride, padding, dilation, transposed, output_padding, groups, out_scale, out_zp, out_qmin,
                 out_qmax):
    y = _conv(x, x_scale, x_zp, x_qmin, x_qmax, dtype, w, w_scales, w_zps, w_axis, w_qmin, w_qmax, w_dtype, bias,
              stride, padding, dilation, transposed, output_padding, groups)
    return q(aten.relu.default(y), out_scale, out_zp, out_qmin, out_qmax, dtype)


def hardtanh_pattern(x, x_scale, x_zp, x_qmin, x_qmax, dtype, w, w_scales, w_zps, w_axis, w_qmin, w_qmax, w_dtype,
                     bias, stride, padding, dilation, transposed, output_padding, groups, min_val, max_val,
                     out_scale, out_zp, out_qmin, out_qmax):
    y = _conv(x, x_scale, x_zp, x_qmin, x_qmax, dtype, w, w_scales, w_zps, w_axis, w_qmin, w_qmax, w_dtype, bias,
              stride, padding, dilation, transposed, output_padding, groups)
    return q(aten.hardtanh.default(y, min_val, max_val), out_scale, out_zp, out_qmin, out_qmax, dtype)


def hardtanh_replacement(x, x_scale, x_zp, x_qmin, x_qmax, dtype, w, w_scales, w_zps, w_axis, w_qmin, w_qmax,
                         w_dtype, bias, stride, padding, dilation, transposed, output_padding, groups, min_val,
                         max_val, out_scale, out_zp, out_qmin, out_qmax):
    return replacement(x, x_scale, x_zp, x_qmin, x_qmax, dtype, w, w_scales, w_zps, w_axis, w_qmin, w_qmax,
                       w_dtype, bias, stride, padding, dilation, transposed, output_padding, groups, out_scale,
                       out_zp, out_qmin, out_qmax)


def check(v: Values) -> str | None:
    import torch

    if v["transposed"]:
        return "transposed convolution has no quantviz kernel"
    if len(shape(v["x"]) or ()) != 4:
        return f"input is not NCHW (shape {shape(v['x'])})"
    if v["w_axis"] != 0 or v["w_dtype"] != torch.int8 or v["w_zps"] is None:
        return "weights are not int8 quantized along the output-channel axis"
    if any(p != 0 for p in v["output_padding"]):
        return "output_padding is not zero"
    return None


ORDER = 10  # place in patterns.ALL: swallows relu / hardtanh
PATTERNS = [
    FusionPattern("conv2d_relu", "quantviz::conv2d", relu_pattern, replacement, check,
                  lambda n, v: fold_clamp(n, 0.0, float("inf"), OUT_SCALE_ARG)),
    FusionPattern("conv2d_hardtanh", "quantviz::conv2d", hardtanh_pattern, hardtanh_replacement, check,
                  lambda n, v: fold_clamp(n, v["min_val"], v["max_val"], OUT_SCALE_ARG)),
    FusionPattern("conv2d", "quantviz::conv2d", pattern, replacement, check),
]
