"""The reference each quantviz operator must reproduce: dequantize the inputs, run the float op, quantize.

Takes exactly a quantviz operator's arguments, so any call of the kernel (a test's, or one captured from a model
run) can be repeated through the reference and the two compared element by element.

Example::

    ref = reference("add", a, 0.1, 0, -128, 127, b, 0.1, 0, -128, 127, 0.2, 0, -128, 127)
    got = torch.ops.quantviz.add(a, 0.1, 0, -128, 127, b, 0.1, 0, -128, 127, 0.2, 0, -128, 127)
    (ref.int() - got.int()).abs().max()   # 0 for add; at most 1 for accumulating kernels
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

import torch.ao.quantization.fx._decomposed  # noqa: F401  registers quantized_decomposed ops

_qd = torch.ops.quantized_decomposed


def dequantize(x: torch.Tensor, scale: float, zero_point: int, qmin: int, qmax: int) -> torch.Tensor:
    return _qd.dequantize_per_tensor(x, scale, zero_point, qmin, qmax, x.dtype)


def quantize(y: torch.Tensor, scale: float, zero_point: int, qmin: int, qmax: int, dtype: torch.dtype) -> torch.Tensor:
    return _qd.quantize_per_tensor(y, scale, zero_point, qmin, qmax, dtype)


def dequantize_weight(w: torch.Tensor, scales: torch.Tensor, zero_points: torch.Tensor) -> torch.Tensor:
    if scales.numel() == 1:
        return _qd.dequantize_per_tensor(w, float(scales.reshape(())), int(zero_points.reshape(())), -128, 127,
                                         torch.int8)
    return _qd.dequantize_per_channel(w, scales, zero_points, 0, -128, 127, torch.int8)


# Each float_* takes an operator's arguments without the trailing output qparams and returns the float result
# that the reference then quantizes.
def _binary(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
    def run(a, a_s, a_zp, a_min, a_max, b, b_s, b_zp, b_min, b_max):
        return fn(dequantize(a, a_s, a_zp, a_min, a_max), dequantize(b, b_s, b_zp, b_min, b_max))
    return run


def float_hardtanh(x, s, zp, qmin, qmax, min_val, max_val):
    return torch.clamp(dequantize(x, s, zp, qmin, qmax), min_val, max_val)


def float_linear(x, s, zp, qmin, qmax, w, w_scales, w_zps, bias):
    return F.linear(dequantize(x, s, zp, qmin, qmax), dequantize_weight(w, w_scales, w_zps), bias)


def float_conv2d(x, s, zp, qmin, qmax, w, w_scales, w_zps, bias, stride, padding, dilation, groups):
    return F.conv2d(dequantize(x, s, zp, qmin, qmax), dequantize_weight(w, w_scales, w_zps), bias, stride, padding,
                    dilation, groups)


def float_max_pool2d(x, s, zp, qmin, qmax, kernel_size, stride, padding, dilation):
    return F.max_pool2d(dequantize(x, s, zp, qmin, qmax), kernel_size, stride or kernel_size, padding, dilation)


def float_avg_pool2d(x, s, zp, qmin, qmax, kernel_size, stride, padding):
    return F.avg_pool2d(dequantize(x, s, zp, qmin, qmax), kernel_size, stride or kernel_size, padding)


def float_mean(x, s, zp, qmin, qmax, keepdim):
    return dequantize(x, s, zp, qmin, qmax).mean(dim=(-2, -1), keepdim=keepdim)


FLOAT_OPS: dict[str, Callable[..., torch.Tensor]] = {
    "add": _binary(torch.add), "add_relu": _binary(lambda a, b: torch.relu(a + b)), "mul": _binary(torch.mul),
    "hardtanh": float_hardtanh, "linear": float_linear, "conv2d": float_conv2d, "max_pool2d": float_max_pool2d,
    "avg_pool2d": float_avg_pool2d, "mean": float_mean,
}


def reference(op: str, *args: Any) -> torch.Tensor:
    """The reference result for ``torch.ops.quantviz.<op>(*args)``: the float op, then quantize with the
    operator's output qparams (its last four arguments) to the input's dtype."""
    y = FLOAT_OPS[op](*args[:-4])
    return quantize(y, *args[-4:], args[0].dtype)
