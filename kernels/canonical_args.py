"""Write out defaulted arguments of the ops the patterns match, so a pattern with every argument spelled out
matches calls that leave some to their defaults (``max_pool2d_with_indices(x, [2, 2], [2, 2])`` becomes
``max_pool2d_with_indices(x, [2, 2], [2, 2], [0, 0], [1, 1], False)``). Same program, same numbers.

Example::

    changed = canonical_args(graph_module)
"""
from __future__ import annotations

from torch import fx

TARGETS = {"aten::max_pool2d_with_indices", "aten::avg_pool2d", "aten::mean.dim", "aten::hardtanh"}


def _name(target) -> str:
    schema = getattr(target, "_schema", None)
    if schema is None:
        return ""
    return schema.name + (f".{schema.overload_name}" if schema.overload_name else "")


def canonical_args(gm: fx.GraphModule) -> int:
    """Fill positional defaults (and positional-able kwargs) of the matched ops; returns how many nodes changed."""
    changed = 0
    for node in gm.graph.nodes:
        if node.op != "call_function" or _name(node.target) not in TARGETS:
            continue
        schema = node.target._schema
        args, kwargs = list(node.args), dict(node.kwargs)
        for arg in schema.arguments[len(args):]:
            if arg.kwarg_only:
                break
            if arg.name in kwargs:
                args.append(kwargs.pop(arg.name))
            elif arg.has_default_value():
                args.append(arg.default_value)
            else:
                break
        if tuple(args) != tuple(node.args):
            node.args, node.kwargs = tuple(args), kwargs
            changed += 1
    if changed:
        gm.recompile()
    return changed
