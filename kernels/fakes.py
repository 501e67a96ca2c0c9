"""Fake (Meta) kernels of the quantviz operators: output shapes and dtypes only, symbolic-shape friendly.

``torch.export``, ``to_edge`` and ``to_executorch`` trace the operators with these. Registered once per
process by :func:`quantviz_kernels.load`.
"""
from __future__ import annotations

from typing import Callable

import torch

from quantviz_kernels.ops import OPERATORS


def _pair(v: list[int], i: int) -> int:
    return v[0] if len(v) == 1 else v[i]


def _out_size(size, k: int, s: int, p: int, d: int):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _same(a, *args):
    return a.new_empty(a.shape)


def _linear(input, s, zp, qmin, qmax, weight, *args):
    return input.new_empty((*input.shape[:-1], weight.shape[0]))


def _conv2d(input, s, zp, qmin, qmax, weight, w_scales, w_zps, bias, stride, padding, dilation, groups, *args):
    n, _, h, w = input.shape
    kh, kw = weight.shape[2], weight.shape[3]
    return input.new_empty((n, weight.shape[0],
                            _out_size(h, kh, _pair(stride, 0), _pair(padding, 0), _pair(dilation, 0)),
                            _out_size(w, kw, _pair(stride, 1), _pair(padding, 1), _pair(dilation, 1))))


def _pool(input, kernel_size, stride, padding, dilation):
    stride = stride or kernel_size
    n, c, h, w = input.shape
    return input.new_empty((n, c,
                            _out_size(h, _pair(kernel_size, 0), _pair(stride, 0), _pair(padding, 0), _pair(dilation, 0)),
                            _out_size(w, _pair(kernel_size, 1), _pair(stride, 1), _pair(padding, 1), _pair(dilation, 1))))


def _max_pool2d(input, s, zp, qmin, qmax, kernel_size, stride, padding, dilation, *args):
    return _pool(input, kernel_size, stride, padding, dilation)


def _avg_pool2d(input, s, zp, qmin, qmax, kernel_size, stride, padding, *args):
    return _pool(input, kernel_size, stride, padding, [1])


def _mean(input, s, zp, qmin, qmax, keepdim, *args):
    shape = (*input.shape[:-2], 1, 1) if keepdim else tuple(input.shape[:-2])
    return input.new_empty(shape)


# Output shape rules, by the name an operator's row in ops.OPERATORS gives as its ``shape``.
SHAPES: dict[str, Callable[..., torch.Tensor]] = {
    "same": _same, "linear": _linear, "conv2d": _conv2d, "max_pool2d": _max_pool2d, "avg_pool2d": _avg_pool2d,
    "mean": _mean}
FAKES: dict[str, Callable[..., torch.Tensor]] = {op.name: SHAPES[op.shape] for op in OPERATORS}


def register_fakes() -> None:
    """Register the fake kernel of every functional quantviz operator (call once per process)."""
    for name, fn in FAKES.items():
        torch.library.register_fake(f"quantviz::{name}")(fn)
