"""Turn any stage artifact into a :class:`GraphView`.

Handles ``torch.fx.GraphModule`` (traced, observed, reference models), ``ExportedProgram``,
ExecuTorch's ``EdgeProgramManager`` / ``ExecutorchProgramManager`` and, recursively, the
programs inside lowered delegate modules::

    view = snapshot(edge_manager, stage="delegate")
    view.subgraphs["executorch_call_delegate"].nodes
"""
from __future__ import annotations

import re
from typing import Any

import torch
from torch import fx

from quantviz.graph.kinds import canonical_target, classify, decode_qparams
from quantviz.graph.model import GraphView, NodeView
from quantviz.graph.patterns import find_patterns

_FRAME = re.compile(r'File "([^"]+)", line (\d+)')
_INTERNAL = ("/site-packages/torch/", "/site-packages/torchao/", "/site-packages/executorch/", "<eval_with_key>")


def snapshot(obj: Any, stage: str = "", *, prefix: str = "") -> GraphView:
    """Snapshot ``obj`` (GraphModule, ExportedProgram or an ExecuTorch program manager)."""
    if hasattr(obj, "exported_program") and callable(obj.exported_program):
        obj = obj.exported_program()
    if isinstance(obj, torch.export.ExportedProgram):
        return _snapshot_graph(obj.graph_module, stage, prefix, program=obj)
    if isinstance(obj, fx.GraphModule):
        return _snapshot_graph(obj, stage, prefix, program=None)
    raise TypeError(f"cannot snapshot a {type(obj).__name__}; expected a GraphModule or ExportedProgram")


def _snapshot_graph(gm: fx.GraphModule, stage: str, prefix: str, program: Any) -> GraphView:
    param_names: set[str] = set()
    placeholder_tensors: dict[str, str] = {}
    mutated: set[str] = set()  # buffers the program writes (KV caches), by their fqn
    written = _written_in_place(gm)  # in-place ops (before functionalization, custom ops) say so by their schema
    if program is not None:
        sig = program.graph_signature
        mutated = set(getattr(sig, "buffers_to_mutate", {}).values())  # functional programs (edge) say so
        for spec in sig.input_specs:
            if spec.kind != torch.export.graph_signature.InputKind.USER_INPUT and hasattr(spec.arg, "name"):
                param_names.add(spec.arg.name)
                if spec.target is not None:
                    placeholder_tensors[spec.arg.name] = spec.target
    modules = dict(gm.named_modules())
    paths = _input_paths(program) if program is not None else _module_input_paths(gm)

    def resolve(n: fx.Node) -> Any:
        if n.op == "placeholder" and program is not None and n.name in placeholder_tensors:
            key = placeholder_tensors[n.name]
            if key in program.state_dict:
                return program.state_dict[key]
            return program.constants.get(key)
        if n.op == "get_attr":
            try:
                return _get_attr(gm, n.target)
            except AttributeError:
                return None
        if n.op == "call_function" and str(n.target).startswith("export.access_subclass_inner_tensor"):
            owner = resolve(n.args[0]) if isinstance(n.args[0], fx.Node) else None  # a torchao weight subclass
            return getattr(owner, str(n.args[1]), None) if owner is not None else None
        return None

    nodes: list[NodeView] = []
    subgraphs: dict[str, GraphView] = {}
    for n in gm.graph.nodes:
        target = canonical_target(n.target)
        module = modules.get(n.target) if n.op == "call_module" else None
        kind = classify(n, target, module, param_names)
        view = NodeView(
            id=prefix + n.name, name=n.name, op=n.op, target=target, kind=kind,
            inputs=[prefix + i.name for i in n.all_input_nodes],
            args=[_abbreviate(a) for a in n.args],
            qparams=decode_qparams(n, kind, target, resolve),
            source=_source(n.meta.get("stack_trace")),
            from_node=_from_node(n.meta.get("from_node")),
            lineage=_lineage(n.meta.get("from_node")),
            debug_handle=_debug_handle(n.meta.get("debug_handle")),
        )
        view.shape, view.dtype = _shape_dtype(n.meta.get("val", n.meta.get("tensor_meta")))
        if n.op == "placeholder":
            view.input_path = paths.get(n.name)
            view.dynamic_dims = _dynamic_dims(n.meta.get("val"), program)
        if n.op == "placeholder" and n.name in placeholder_tensors and (
                placeholder_tensors[n.name] in mutated or n.name in written):
            view.mutable_buffer = placeholder_tensors[n.name]
        elif n.op == "get_attr" and n.name in written:
            view.mutable_buffer = str(n.target)
        view.module_path, view.module_type = _module(n, module)
        if kind == "delegate":
            lowered = resolve(n.args[0]) if isinstance(n.args[0], fx.Node) else None
            if lowered is not None and hasattr(lowered, "original_module"):
                view.backend = str(getattr(lowered, "backend_id", ""))
                view.subgraph = prefix + n.name
                subgraphs[view.subgraph] = snapshot(lowered.original_module, f"{stage}/{n.name}",
                                                    prefix=prefix + n.name + "/")
        nodes.append(view)
    return GraphView(stage=stage, nodes=nodes, patterns=find_patterns(nodes), subgraphs=subgraphs)


def _written_in_place(gm: fx.GraphModule) -> set[str]:
    """Names of the placeholder and get_attr nodes an op writes in place, by the op's schema (``Tensor(a!)``
    arguments: ``index_copy_``, ``llama::update_cache``'s cache); out= arguments are not counted."""
    out: set[str] = set()
    for n in gm.graph.nodes:
        schema = getattr(n.target, "_schema", None) if n.op == "call_function" else None
        if schema is None:
            continue
        for i, arg in enumerate(schema.arguments):
            if arg.alias_info is None or not arg.alias_info.is_write or arg.kwarg_only:
                continue
            value = n.args[i] if i < len(n.args) else n.kwargs.get(arg.name)
            if isinstance(value, fx.Node) and value.op in ("placeholder", "get_attr"):
                out.add(value.name)
    return out


def _get_attr(gm: torch.nn.Module, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _abbreviate(a: Any, limit: int = 48) -> str:
    if isinstance(a, fx.Node):
        return f"%{a.name}"
    if isinstance(a, (list, tuple)):
        text = "[" + ", ".join(_abbreviate(x, 16) for x in a) + "]"
    else:
        text = repr(a)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _input_paths(program: Any) -> dict[str, str]:
    """Each user input placeholder's place in forward's arguments: ``{"input_ids": "args[0]", "cache_k":
    "kwargs['cache']['k']"}`` (from the program's ``in_spec``, the order the runtime takes the flat inputs in)."""
    users = [s.arg.name for s in program.graph_signature.input_specs
             if s.kind == torch.export.graph_signature.InputKind.USER_INPUT and hasattr(s.arg, "name")]
    return _paths(users, getattr(getattr(program, "call_spec", None), "in_spec", None))


def _module_input_paths(gm: fx.GraphModule) -> dict[str, str]:
    """The same for an exported program's module (``ep.module()``, prepare_pt2e's and convert_pt2e's models): its
    placeholders are the flat user inputs of its ``_in_spec``."""
    spec = getattr(gm, "_in_spec", None)
    return _paths([n.name for n in gm.graph.nodes if n.op == "placeholder"], spec) if spec is not None else {}


def _paths(users: list[str], spec: Any) -> dict[str, str]:
    pytree = torch.utils._pytree
    if spec is None or spec.num_leaves != len(users):
        return {}
    out = {}
    for (path, _), name in zip(pytree.tree_flatten_with_path(pytree.tree_unflatten(list(range(len(users))),
                                                                                    spec))[0], users):
        text = pytree.keystr(path)  # "[0][0]", "[1]['cache']['k']"
        if text.startswith("[0]"):
            text = "args" + text[3:]
        elif text.startswith("[1]"):
            text = "kwargs" + text[3:]
        out[name] = text
    return out


def _dynamic_dims(val: Any, program: Any) -> list[str]:
    """The symbolic sizes of a placeholder's shape with their ranges: ``["s0 ∈ [2, 64]"]`` (the program's
    ``range_constraints``, else the shape environment's), without guarding on them."""
    out = []
    for d in getattr(val, "shape", ()) or ():
        if not isinstance(d, torch.SymInt):
            continue
        expr = d.node.expr
        ranges = (getattr(program, "range_constraints", None) or {}) if program is not None else {}
        vr = ranges.get(expr)
        if vr is None:
            env = getattr(d.node, "shape_env", None)
            vr = getattr(env, "var_to_range", {}).get(expr) if env is not None else None
        if vr is None:
            text = f"{expr}"
        else:
            lo, hi = vr.lower, vr.upper
            hi_text = "∞" if not getattr(hi, "is_finite", True) or str(hi) in ("oo", "int_oo") else str(hi)
            text = f"{expr} ∈ [{lo}, {hi_text}]"
        if text not in out:
            out.append(text)
    return out


def _shape_dtype(val: Any) -> tuple[list[int | str] | None, str | None]:
    """The shape (a symbolic size, e.g. a dynamic sequence length, as its name: ``[1, "s27", 64]``) and dtype.

    Never ``int()`` a SymInt: that guards on its example value and specialises the program's shape environment
    (a dynamic dimension then lowers as a static one, and the .pte changes)."""
    if isinstance(val, (list, tuple)) and val and isinstance(val[0], torch.Tensor):
        val = val[0]
    shape = getattr(val, "shape", None)
    dtype = getattr(val, "dtype", None)
    if shape is None:
        return None, None
    try:
        dims = [str(d) if isinstance(d, torch.SymInt) else int(d) for d in shape]
    except (TypeError, ValueError):
        dims = None
    return dims, str(dtype) if dtype is not None else None


def _module(n: fx.Node, module: torch.nn.Module | None) -> tuple[str | None, str | None]:
    if n.op == "call_module":
        return str(n.target), type(module).__name__ if module is not None else None
    stack = n.meta.get("nn_module_stack")
    if not stack:
        return None, None
    path, typ = list(stack.values())[-1]
    type_name = typ.__name__ if isinstance(typ, type) else str(typ).rsplit(".", 1)[-1]
    return normalise_module_path(str(path)) or None, type_name


def normalise_module_path(path: str) -> str:
    """``L['self'].features[0].conv`` / ``L__self___features_0`` -> ``features.0.conv``."""
    path = re.sub(r"^L\['self'\]\.?", "", path)
    path = re.sub(r"\[['\"]?([^\]'\"]+)['\"]?\]", r".\1", path)
    path = re.sub(r"^L__self___", "", path)
    path = re.sub(r"\._modules\.", ".", path)
    return path.strip(".")


def _source(stack_trace: str | None) -> str | None:
    if not stack_trace:
        return None
    frames = _FRAME.findall(stack_trace)
    user = [f for f in frames if not any(s in f[0] for s in _INTERNAL)]
    if not user:
        return None
    path, line = user[-1]
    parts = path.replace("\\", "/").split("/")
    return f"{'/'.join(parts[-2:])}:{line}"


def _from_node(sources: Any) -> list[str]:
    if not sources:
        return []
    return [str(getattr(s, "name", s)) for s in sources][:8]


def _lineage(sources: Any, limit: int = 32) -> list[str]:
    """Names along the first provenance chain: the node it came from, the one that came from, ..."""
    chain: list[str] = []
    while sources and len(chain) < limit:
        first = sources[0]
        chain.append(str(getattr(first, "name", first)))
        sources = getattr(first, "from_node", None)
    return chain


def _debug_handle(h: Any) -> int | None:
    if isinstance(h, int):
        return h
    if isinstance(h, (tuple, list)) and h and isinstance(h[0], int):
        return h[0]
    return None
