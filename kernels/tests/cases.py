"""Argument sets for every quantviz operator and dtype: a large random case (>= 100,000 output elements) and edge
cases (extreme zero points, tiny and huge scales, saturation, odd sizes, per-channel and depthwise weights).
Output qparams are chosen like an observer would, from the float result's range, unless a case wants saturation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from quantviz_kernels.reference import FLOAT_OPS

QRANGE = {torch.int8: (-128, 127), torch.uint8: (0, 255)}
DTYPES = (torch.int8, torch.uint8)


@dataclass
class Case:
    op: str
    dtype: torch.dtype
    label: str
    args: tuple[Any, ...]

    @property
    def id(self) -> str:
        return f"{self.op}-{str(self.dtype).replace('torch.', '')}-{self.label}"


def rand_q(shape, dtype, g: torch.Generator) -> torch.Tensor:
    lo, hi = QRANGE[dtype]
    return torch.randint(lo, hi + 1, shape, generator=g, dtype=torch.int32).to(dtype)


def in_qparams(dtype, scale: float, zp: int | None = None) -> tuple:
    lo, hi = QRANGE[dtype]
    return (scale, (lo + hi + 1) // 2 if zp is None else zp, lo, hi)


def out_qparams(y: torch.Tensor, dtype, squeeze: float = 1.0) -> tuple:
    """Observer-like output qparams covering y's range; squeeze < 1 makes the range too small (saturation)."""
    lo, hi = QRANGE[dtype]
    y_lo, y_hi = min(float(y.min()), 0.0), max(float(y.max()), 0.0)
    scale = max((y_hi - y_lo) / (hi - lo) * squeeze, 1e-8)
    zp = int(min(max(lo - round(y_lo / scale), lo), hi))
    return (scale, zp, lo, hi)


def _finish(op, dtype, label, args, squeeze=1.0, out=None) -> Case:
    y = FLOAT_OPS[op](*args)
    return Case(op, dtype, label, (*args, *(out or out_qparams(y, dtype, squeeze))))


def weights(g, cout, *rest, per_channel: bool):
    w = torch.randint(-127, 128, (cout, *rest), generator=g, dtype=torch.int32).to(torch.int8)
    n = cout if per_channel else 1
    scales = (torch.rand(n, generator=g) * 0.02 + 0.001).float()
    return w, scales, torch.zeros(n, dtype=torch.int64)


def cases_for(op: str, dtype, seed: int = 0) -> list[Case]:
    g = torch.Generator().manual_seed(seed)
    lo, hi = QRANGE[dtype]
    out: list[Case] = []
    if op in ("add", "add_relu", "mul"):
        for label, shape, qa, qb, squeeze in [
            ("random", (1, 64, 56, 56), in_qparams(dtype, 0.05), in_qparams(dtype, 0.03, lo + 7), 1.0),
            ("extreme-zp", (3, 7, 13, 11), in_qparams(dtype, 0.02, lo), in_qparams(dtype, 0.04, hi), 1.0),
            ("tiny-scale", (1001,), in_qparams(dtype, 1e-6), in_qparams(dtype, 3e-6), 1.0),
            ("huge-scale", (1001,), in_qparams(dtype, 1e3), in_qparams(dtype, 2e3), 1.0),
            ("saturate", (4097,), in_qparams(dtype, 0.05), in_qparams(dtype, 0.05), 0.25),
        ]:
            a, b = rand_q(shape, dtype, g), rand_q(shape, dtype, g)
            out.append(_finish(op, dtype, label, (a, *qa, b, *qb), squeeze))
    elif op == "hardtanh":
        for label, shape, qi, bounds, squeeze in [
            ("random", (1, 64, 56, 56), in_qparams(dtype, 0.05), (-1.0, 2.5), 1.0),
            ("relu", (3, 5, 17, 9), in_qparams(dtype, 0.05, lo + 3), (0.0, float("inf")), 1.0),
            ("relu6-saturate", (5001,), in_qparams(dtype, 0.1), (0.0, 6.0), 0.5),
        ]:
            out.append(_finish(op, dtype, label, (rand_q(shape, dtype, g), *qi, *bounds), squeeze))
    elif op == "linear":
        for label, m, k, n, per_channel, bias, squeeze in [
            ("random", 256, 128, 400, False, True, 1.0),
            ("per-channel", 64, 77, 33, True, True, 1.0),
            ("no-bias-odd", 7, 5, 3, True, False, 1.0),
            ("saturate", 32, 64, 48, False, True, 0.3),
        ]:
            x = rand_q((m, k), dtype, g)
            w, ws, wz = weights(g, n, k, per_channel=per_channel)
            b = torch.randn(n, generator=g) if bias else None
            out.append(_finish(op, dtype, label, (x, *in_qparams(dtype, 0.02), w, ws, wz, b), squeeze))
    elif op == "conv2d":
        for label, xs, cout, k, stride, pad, dil, groups, per_channel, bias in [
            ("random", (2, 8, 42, 42), 32, 3, [1, 1], [0, 0], [1, 1], 1, False, True),
            ("per-channel-pad", (1, 6, 17, 23), 10, 3, [1, 1], [1, 1], [1, 1], 1, True, True),
            ("stride-dilation", (1, 4, 19, 21), 6, 3, [2, 2], [2, 1], [2, 2], 1, True, False),
            ("depthwise", (1, 16, 15, 15), 16, 3, [1, 1], [1, 1], [1, 1], 16, True, True),
            ("groups", (1, 8, 9, 9), 12, 1, [1, 1], [0, 0], [1, 1], 4, False, True),
        ]:
            x = rand_q(xs, dtype, g)
            w, ws, wz = weights(g, cout, xs[1] // groups, k, k, per_channel=per_channel)
            b = torch.randn(cout, generator=g) if bias else None
            args = (x, *in_qparams(dtype, 0.02, lo + 11), w, ws, wz, b, stride, pad, dil, groups)
            out.append(_finish(op, dtype, label, args))
    elif op == "max_pool2d":
        for label, xs, k, s, p, d, qo in [
            ("random", (4, 16, 160, 160), [2, 2], [2, 2], [0, 0], [1, 1], None),
            ("pad-dilation", (1, 3, 17, 19), [3, 3], [2, 1], [1, 1], [2, 1], None),
            ("requantize", (2, 3, 11, 13), [3, 3], [], [0, 0], [1, 1], (0.07, lo + 5, lo, hi)),
        ]:
            qi = in_qparams(dtype, 0.05)
            out.append(_finish("max_pool2d", dtype, label, (rand_q(xs, dtype, g), *qi, k, s, p, d), out=qo))
    elif op == "avg_pool2d":
        for label, xs, k, s, p in [
            ("random", (4, 16, 160, 160), [2, 2], [2, 2], [0, 0]),
            ("pad-odd", (1, 3, 17, 19), [3, 3], [2, 1], [1, 1]),
        ]:
            out.append(_finish(op, dtype, label, (rand_q(xs, dtype, g), *in_qparams(dtype, 0.05), k, s, p)))
    elif op == "mean":
        for label, xs, keepdim in [("random", (4, 25600, 3, 3), True), ("odd-no-keepdim", (3, 5, 7, 9), False)]:
            out.append(_finish(op, dtype, label, (rand_q(xs, dtype, g), *in_qparams(dtype, 0.05, lo + 1), keepdim)))
    return out


def all_cases() -> list[Case]:
    from quantviz_kernels import OPS

    return [c for op in OPS for dtype in DTYPES for c in cases_for(op, dtype)]
