"""keep_integer_scalars: integer ``add``/``mul`` keep their Python-scalar operands integer through ``prepare_pt2e``.

Why: ``XNNPACKQuantizer.transform_for_annotation`` (``_convert_scalars_to_attrs``) turns the scalar of every
``aten.add.Tensor``/``aten.mul.Tensor`` into a float32 buffer, whatever the other operand's dtype. A model's index
arithmetic, e.g. Hugging Face's ``cache_position = torch.arange(n) + past_seen_tokens``, then becomes int64 + float32
= float32 while the node's metadata still says int64, and calibration fails where the indices are used (an
``embedding``, the rotary embedding's dtype assert).

Pattern: ``add(int_tensor, 3)`` (a Python int, the node's value an integer tensor).
Replacement: ``add(int_tensor, get_attr(_int_scalar_constant_k))`` holding ``tensor(3, dtype=int64)``, so the
quantizer's pass no longer sees a scalar. The model computes the same values; only the graph's constant changes::

    gm = torch.export.export(model, example_inputs).module()
    gm, count = keep_integer_scalars(gm)
    observed = prepare_pt2e(gm, quantizer)
"""
from __future__ import annotations

import torch
from torch import fx

ADD_MUL = (torch.ops.aten.add.Tensor, torch.ops.aten.mul.Tensor)


def keep_integer_scalars(gm: fx.GraphModule) -> tuple[fx.GraphModule, int]:
    """``gm`` with the Python-int operands of integer add/mul as integer tensor constants; (gm, how many)."""
    count = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in ADD_MUL:
            continue
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor) or val.dtype.is_floating_point or val.dtype.is_complex:
            continue
        args = []
        for arg in node.args:
            if isinstance(arg, (bool, int)) and not isinstance(arg, fx.Node):
                name = f"_int_scalar_constant_{count}"
                count += 1
                constant = torch.tensor(arg, dtype=val.dtype)
                gm.register_buffer(name, constant)
                with gm.graph.inserting_before(node):
                    attr = gm.graph.get_attr(name)
                mode = getattr(val, "fake_mode", None)
                attr.meta["val"] = mode.from_tensor(constant, static_shapes=True) if mode is not None else constant
                args.append(attr)
            else:
                args.append(arg)
        node.args = tuple(args)
    if count:
        gm.graph.lint()
        gm.recompile()
    return gm, count
