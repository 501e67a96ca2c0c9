"""Pooling: dequantize -> max_pool2d_with_indices[0] / avg_pool2d / mean(H, W) -> quantize
==>  quantviz.max_pool2d / quantviz.avg_pool2d / quantviz.mean.

Arguments are written out in full (``canonical_args`` fills defaults first), so one pattern covers every call.
"""
from __future__ import annotations

import operator

from quantviz_kernels.patterns.base import FusionPattern, Values, aten, dq, q, qv, shape


def max_pattern(x, x_scale, x_zp, x_qmin, x_qmax, dtype, kernel_size, stride, padding, dilation, ceil_mode,
                out_scale, out_zp, out_qmin, out_qmax):
    y = aten.max_pool2d_with_indices.default(dq(x, x_scale, x_zp, x_qmin, x_qmax, dtype), kernel_size, stride,
                                             padding, dilation, ceil_mode)
    return q(operator.getitem(y, 0), out_scale, out_zp, out_qmin, out_qmax, dtype)


def max_replacement(x, x_scale, x_zp, x_qmin, x_qmax, dtype, kernel_size, stride, padding, dilation, ceil_mode,
                    out_scale, out_zp, out_qmin, out_qmax):
    return qv().max_pool2d.default(x, x_scale, x_zp, x_qmin, x_qmax, kernel_size, stride, padding, dilation,
                                   out_scale, out_zp, out_qmin, out_qmax)


def avg_pattern(x, x_scale, x_zp, x_qmin, x_qmax, dtype, kernel_size, stride, padding, ceil_mode, count_include_pad,
                divisor_override, out_scale, out_zp, out_qmin, out_qmax):
    y = aten.avg_pool2d.default(dq(x, x_scale, x_zp, x_qmin, x_qmax, dtype), kernel_size, stride, padding,
                                ceil_mode, count_include_pad, divisor_override)
    return q(y, out_scale, out_zp, out_qmin, out_qmax, dtype)


def avg_replacement(x, x_scale, x_zp, x_qmin, x_qmax, dtype, kernel_size, stride, padding, ceil_mode,
                    count_include_pad, divisor_override, out_scale, out_zp, out_qmin, out_qmax):
    return qv().avg_pool2d.default(x, x_scale, x_zp, x_qmin, x_qmax, kernel_size, stride, padding,
                                   out_scale, out_zp, out_qmin, out_qmax)


def mean_pattern(x, x_scale, x_zp, x_qmin, x_qmax, dtype, dim, keepdim, out_scale, out_zp, out_qmin, out_qmax):
    y = aten.mean.dim(dq(x, x_scale, x_zp, x_qmin, x_qmax, dtype), dim, keepdim)
    return q(y, out_scale, out_zp, out_qmin, out_qmax, dtype)


def mean_replacement(x, x_scale, x_zp, x_qmin, x_qmax, dtype, dim, keepdim, out_scale, out_zp, out_qmin, out_qmax):
    return qv().mean.default(x, x_scale, x_zp, x_qmin, x_qmax, keepdim, out_scale, out_zp, out_qmin, out_qmax)


def _nchw(v: Values) -> str | None:
    return None if len(shape(v["x"]) or ()) == 4 else f"input is not NCHW (shape {shape(v['x'])})"


def max_check(v: Values) -> str | None:
    return "ceil_mode=True has no quantviz kernel" if v["ceil_mode"] else _nchw(v)


def avg_check(v: Values) -> str | None:
    if v["ceil_mode"] or not v["count_include_pad"] or v["divisor_override"] is not None:
        return "only floor mode, count_include_pad=True and no divisor_override have a quantviz kernel"
    return _nchw(v)


def mean_check(v: Values) -> str | None:
    rank = len(shape(v["x"]) or ())
    if rank < 2 or sorted(d % rank for d in v["dim"]) != [rank - 2, rank - 1]:
        return f"mean over dims {list(v['dim'])} is not a mean over the last two dims"
    return None


ORDER = 50  # place in patterns.ALL
PATTERNS = [
    FusionPattern("max_pool2d", "quantviz::max_pool2d", max_pattern, max_replacement, max_check),
    FusionPattern("avg_pool2d", "quantviz::avg_pool2d", avg_pattern, avg_replacement, avg_check),
    FusionPattern("mean", "quantviz::mean", mean_pattern, mean_replacement, mean_check),
]
