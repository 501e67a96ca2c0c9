"""Classify fx nodes into quantviz kinds and decode their quantization parameters."""
from __future__ import annotations

import operator
from typing import Any, Callable

import torch
from torch import fx

from quantviz.graph.model import QParams

QUANT_NAMESPACES = ("quantized_decomposed", "quantviz", "torchao")


def canonical_target(target: Any) -> str:
    """A stable, readable name for a node target.

    ``aten.convolution.default`` for ATen and Edge ops (Edge and ATen spell the same op the
    same way), ``quantized_decomposed.quantize_per_tensor.default``, ``operator.getitem``
    for Python callables, the attribute path for modules and attributes.
    """
    if isinstance(target, str):
        return target
    schema = getattr(target, "_schema", None)
    if schema is not None:
        ns, _, name = schema.name.partition("::")
        overload = schema.overload_name or "default"
        return f"{ns}.{name}.{overload}"
    if isinstance(target, torch._ops.HigherOrderOperator):
        return f"higher_order.{target.name()}"
    if hasattr(target, "_name") and hasattr(target, "namespace"):  # OpOverloadPacket-like
        return str(target)
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or str(target)
    if module in ("_operator", "operator"):
        module = "operator"
    if module.startswith("torch") and module != "torch":
        module = "torch"
    return f"{module}.{name}" if module else name


def op_name(target_name: str) -> str:
    """The bare op of a canonical target: ``aten.convolution.default`` -> ``convolution``."""
    parts = target_name.split(".")
    if parts[0] in ("aten", "quantized_decomposed", "quantviz", "torchao", "higher_order") and len(parts) >= 2:
        return parts[1]
    if parts[0] in ("torch", "operator"):
        return parts[-1]
    return parts[-1]


def _quant_op_kind(ns: str, name: str) -> str | None:
    if ns not in QUANT_NAMESPACES:
        return None
    if name.startswith("quantize_per") or name == "quantize_affine":
        return "quantize"
    if name.startswith("dequantize_per") or name == "dequantize_affine":
        return "dequantize"
    if name.startswith("choose_qparams"):
        return "choose_qparams"
    return "quantized_op"


def classify(node: fx.Node, target_name: str, module: torch.nn.Module | None, param_names: set[str]) -> str:
    """The quantviz kind of ``node`` (see :data:`quantviz.graph.model.KINDS`)."""
    if node.op == "placeholder":
        return "parameter" if node.name in param_names else "input"
    if node.op == "output":
        return "output"
    if node.op == "get_attr":
        return "parameter"
    if node.op == "call_module":
        if module is not None and _is_observer(module):
            return "observer"
        if target_name == "_guards_fn":
            return "other"
        return "float_op"
    if node.op == "call_function":
        if target_name == "higher_order.executorch_call_delegate":
            return "delegate"
        if target_name.startswith("export.access_subclass_inner_tensor"):
            return "parameter"  # a quantized weight's int data, scale or zero point (torchao tensor subclasses)
        ns, _, rest = target_name.partition(".")
        quant = _quant_op_kind(ns, rest.split(".")[0])
        if quant:
            return quant
        if target_name in ("operator.getitem",) or target_name.startswith("executorch.exir.memory") \
                or target_name.startswith("executorch"):
            return "other"
        return "float_op"
    if node.op == "call_method":
        return "float_op"
    return "other"


def _is_observer(module: torch.nn.Module) -> bool:
    from torch.ao.quantization.fake_quantize import FakeQuantizeBase
    from torch.ao.quantization.observer import ObserverBase

    if isinstance(module, (ObserverBase, FakeQuantizeBase)):
        return True
    # torchao's pt2e observers live in their own class hierarchy
    return any(c.__name__ in ("ObserverBase", "FakeQuantizeBase") for c in type(module).__mro__)


def decode_qparams(node: fx.Node, kind: str, target_name: str, resolve: Callable[[fx.Node], Any]) -> QParams | None:
    """Read scale/zero point/range/dtype from a q, dq or choose_qparams node's arguments.

    ``resolve`` turns a node argument (a buffer or constant) into its tensor, or None.
    """
    if kind not in ("quantize", "dequantize", "choose_qparams"):
        return None
    args = list(node.args) + [v for k, v in node.kwargs.items() if k not in ("out_dtype",)]

    def value(a: Any) -> Any:
        if isinstance(a, fx.Node):
            a = resolve(a)
        if isinstance(a, torch.Tensor):
            if a.numel() == 1:
                return a.item()
            return a.detach().flatten().tolist()
        return a

    def dtype_of(a: Any) -> str | None:
        return str(a) if isinstance(a, torch.dtype) else None

    try:
        if "affine" in target_name:
            return _affine_qparams(node, kind, args, value, dtype_of)
        if kind == "choose_qparams":
            # choose_qparams(input, quant_min, quant_max, eps, dtype)
            return QParams(scheme="dynamic", quant_min=_int(value(args[1])), quant_max=_int(value(args[2])),
                           dtype=dtype_of(args[4]) if len(args) > 4 else None)
        if "per_channel" in target_name:
            # (input, scales, zero_points, axis, quant_min, quant_max, dtype)
            scales, zps = value(args[1]), value(args[2])
            scales = scales if isinstance(scales, list) else [scales]
            zps = zps if isinstance(zps, list) else [zps]
            return QParams(scheme="per_channel", scale=[float(s) for s in scales], zero_point=[int(z) for z in zps],
                           axis=int(args[3]), quant_min=_int(args[4]), quant_max=_int(args[5]),
                           dtype=dtype_of(args[6]), channels=len(scales))
        if "per_token" in target_name:
            return QParams(scheme="per_token", quant_min=_int(value(args[3])) if len(args) > 3 else None,
                           quant_max=_int(value(args[4])) if len(args) > 4 else None,
                           dtype=dtype_of(args[5]) if len(args) > 5 else None)
        # per tensor: (input, scale, zero_point, quant_min, quant_max, dtype)
        scale, zp = value(args[1]), value(args[2])
        dynamic = isinstance(args[1], fx.Node) and _is_choose_qparams_output(args[1])
        if dynamic or scale is None or isinstance(scale, fx.Node):
            return QParams(scheme="dynamic", quant_min=_int(value(args[3])), quant_max=_int(value(args[4])),
                           dtype=dtype_of(args[5]))
        return QParams(scheme="per_tensor", scale=float(scale), zero_point=int(zp), quant_min=_int(value(args[3])),
                       quant_max=_int(value(args[4])), dtype=dtype_of(args[5]))
    except (IndexError, TypeError, ValueError):
        return None


def _affine_qparams(node: fx.Node, kind: str, args: list, value: Callable, dtype_of: Callable) -> QParams:
    """torchao's ``choose_qparams_affine(input, mapping_type, block_size, target_dtype, quant_min, quant_max, ...)``,
    ``quantize_affine(input, block_size, scale, zero_point, output_dtype, quant_min, quant_max)`` and
    ``dequantize_affine(input, block_size, scale, zero_point, input_dtype, quant_min, quant_max, output_dtype)``.

    The block size against the input's shape gives the granularity: a block as large as the tensor is per tensor,
    one row wide ([1, K]) per channel (axis 0), a slice of a row ([1, 32]) per group, and a computed scale (from
    choose_qparams_affine) dynamic, e.g. per token ([1, 1, K])."""
    if kind == "choose_qparams":
        block = [int(b) for b in args[2]]
        qmin, qmax = _int(value(args[4])), _int(value(args[5]))
        return QParams(scheme="dynamic", dtype=_narrow(dtype_of(args[3]), qmin, qmax), block_size=block,
                       quant_min=qmin, quant_max=qmax)
    block = [int(b) for b in args[1]]
    qmin, qmax = args[5], args[6]
    dtype = _narrow(dtype_of(args[4]), _int(value(qmin)), _int(value(qmax)))
    if isinstance(args[2], fx.Node) and _is_choose_qparams_output(args[2]):
        return QParams(scheme="dynamic", dtype=dtype, block_size=block, quant_min=_int(value(qmin)),
                       quant_max=_int(value(qmax)))
    scale = args[2].meta.get("val") if isinstance(args[2], fx.Node) else None
    resolved = value(args[2])
    scales = resolved if isinstance(resolved, list) else ([resolved] if isinstance(resolved, float) else None)
    shape = list(getattr(scale, "shape", [])) or ([len(scales)] if scales else [])
    src = node.args[0].meta.get("val") if isinstance(node.args[0], fx.Node) else None
    dims = [int(d) for d in getattr(src, "shape", [])]
    q = QParams(scheme="per_group", dtype=dtype, block_size=block, scale_shape=shape or None,
                quant_min=_int(value(qmin)), quant_max=_int(value(qmax)))
    if scales:
        q.scale_min, q.scale_max = float(min(scales)), float(max(scales))
    if dims and block == dims:
        q.scheme, q.scale = "per_tensor", scales[0] if scales and len(scales) == 1 else None
        zp = value(args[3])
        q.zero_point = int(zp) if isinstance(zp, (int, float)) else None
    elif len(dims) == 2 and block[0] == 1 and block[1] == dims[1]:
        q.scheme, q.axis, q.channels = "per_channel", 0, dims[0]
    elif len(dims) == 2 and block[0] == 1:
        q.group_size = block[1]
    return q


def _narrow(dtype: str | None, qmin: int | None, qmax: int | None) -> str | None:
    """torchao keeps int4 (and other narrow) values in int8 tensors: name the range's bits, e.g. int8 with
    [-8, 7] -> "torch.int4"."""
    if dtype in ("torch.int8", "torch.uint8") and qmin is not None and qmax is not None:
        bits = (qmax - qmin + 1).bit_length() - 1
        if bits < 8 and qmax - qmin + 1 == 2 ** bits:
            return f"torch.{'u' if qmin >= 0 else ''}int{bits}"
    return dtype


def _is_choose_qparams_output(n: fx.Node) -> bool:
    src = n.args[0] if n.target is operator.getitem and n.args else n
    return isinstance(src, fx.Node) and "choose_qparams" in canonical_target(src.target)


def _int(x: Any) -> int | None:
    return int(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None
