"""Which fx node a failure happened at: its name, target, inputs, module and source line.

Passes, partitioners, interpreters and observers all fail while executing an fx graph. The node being
executed is found generically, from the traceback alone:

* a frame with a local variable holding a ``torch.fx.Node`` (``n`` in ``torch.fx.Interpreter.run_node``,
  ``node`` in most passes and partitioners), or
* a frame of a GraphModule's generated ``forward`` (file ``<eval_with_key>.N``): its source line names the
  node it computes (``index = torch.ops.aten.index.Tensor(...)``).

The exception and every exception it chains (``__cause__``/``__context__``) are searched, innermost first.

Example::

    try:
        edge.to_backend(XnnpackPartitioner())
    except Exception as exc:
        site = find_failure_site(exc)
        if site:
            print(site.describe())
            # node 'aten_linear_default' = aten.linear.default(...) in module 'blocks.1.qkv' (Linear) at model.py:8:
            # q, k, v = self.qkv(tokens).chunk(3, dim=-1), during pass ConvertToLinearPass

For a failure inside a GraphModule's forward, :func:`rerun_under_interpreter` re-runs the same inputs node by
node and also reports where an integer value first turned float (or any dtype differs from the traced one).
"""
from __future__ import annotations

import linecache
import re
import traceback
from dataclasses import asdict, dataclass, field
from types import FrameType
from typing import Any

import torch
from torch import fx

from quantviz.graph.snapshot import normalise_module_path

# Paths of the libraries' code: a stack trace's last frame outside them is the model's line (a model library
# installed in site-packages, e.g. timm, counts as the model's code).
_LIBRARY_PATHS = ("/torch/", "/torchao/", "/executorch/", "<eval_with_key>", "fx_generated_")
# Classes whose methods execute a graph, most telling first; the innermost of a kind on the stack is named.
_RUNNER_KINDS = (("PassBase", "pass"), ("ExportPass", "pass"), ("Partitioner", "partitioner"),
                 ("ObserverBase", "observer"), ("FakeQuantizeBase", "fake-quantize"),
                 ("BackendDetails", "backend preprocess"), ("Interpreter", "interpreter"))
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in [^\n]*\n\s*([^\n]*)')
_ASSIGNED = re.compile(r"^\s*([A-Za-z_]\w*)(?:\s*,)?\s*=")


@dataclass
class FailureSite:
    """The fx node a stage failed at, described for a user."""

    node: str  # the node's name in its graph, e.g. "aten_linear_default"
    op: str  # its opcode: "call_function", "call_module", "call_method", "get_attr", "placeholder", "output"
    target: str  # what it runs: "aten.linear.default", or the submodule's qualified name for call_module
    inputs: list[str] = field(default_factory=list)  # its inputs, "view: (256,) float32" (runtime values if seen)
    module: str = ""  # qualified name of the innermost model module it was traced in, e.g. "blocks.1.attn"
    module_type: str = ""  # that module's class name, e.g. "WindowAttention"
    source: str = ""  # the model's source line it came from: "model.py:19: index = rel[0] + 3"
    during: str = ""  # what was executing the graph: "pass ConvertToLinearPass", "observer ... (HistogramObserver)"
    meta_from: str = ""  # set when module/source were read from a neighbouring node (a node a pass created has none)
    dtype_drift: str = ""  # where a value first got another dtype than traced, when the graph was re-run

    def short(self) -> str:
        """One clause for a message: node, module, source line."""
        text = f"node '{self.node}'"
        if self.module:
            text += f" in module '{self.module}'" + (f" ({self.module_type})" if self.module_type else "")
        if self.source:
            text += f" at {self.source}"
        return text

    def describe(self) -> str:
        """Everything known, one line: ``node 'x' = aten.index.Tensor(inputs ...) in module 'm' (M) at f.py:3``."""
        text = f"node '{self.node}' = {self.target}({', '.join(self.inputs)})"
        if self.module:
            text += f" in module '{self.module}'" + (f" ({self.module_type})" if self.module_type else "")
        if self.meta_from:
            text += f" (module and line read from node '{self.meta_from}')"
        if self.source:
            text += f" at {self.source}"
        if self.during:
            text += f", during {self.during}"
        if self.dtype_drift:
            text += f"; {self.dtype_drift}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_failure_site(exc: BaseException, rerun: bool = True) -> FailureSite | None:
    """The fx node being executed when ``exc`` (or an exception it chains) was raised; None when no frame of
    its traceback was executing an fx graph.

    torch drops the traceback of an error raised directly by a GraphModule's generated code (it prints the
    line to stderr instead); with ``rerun``, that GraphModule is then run once more on the same inputs, node by
    node (:func:`rerun_under_interpreter`), to find the node.
    """
    found = []  # (node, runtime inputs, graph module), innermost first
    frames: list[tuple[FrameType, int]] = []
    for e in _innermost_first(exc):
        tb = list(traceback.walk_tb(e.__traceback__))
        frames = tb + frames
        for frame, lineno in reversed(tb):
            hit = _node_of_frame(frame, lineno)
            if hit is not None:
                found.append(hit)
        if not found and rerun:
            site = _rerun_stripped_call(tb, e)
            if site is not None:
                return site
    if not found:
        return None
    node, runtime_inputs, gm = found[0]
    # a node a pass just created has no metadata; the node the pass was rewriting (an outer frame's) has it
    fallback = [n for n, _, _ in found[1:]]
    return _describe(node, runtime_inputs, gm, _what_was_running(frames), fallback)


def rerun_under_interpreter(gm: fx.GraphModule, args: tuple, expected: BaseException | None = None
                            ) -> FailureSite | None:
    """Run ``gm`` on ``args`` node by node; the site of the node that raises, with its runtime inputs and the
    first node whose output dtype differs from the traced one (``dtype_drift``). None when it runs, or when it
    raises something else than ``expected`` (same type and first line).

    Only for diagnosis after a failure: it runs the inputs once more, without autograd.
    """
    from quantviz.model_spec import as_batch

    interp = _RecordingInterpreter(gm)
    try:
        batch = as_batch(args)  # a tuple, or a Batch with keyword inputs
        flat = tuple(batch.args)
        if getattr(gm, "_in_spec", None) is not None:  # an exported module flattens its inputs in forward
            from torch.fx._pytree import tree_flatten_spec

            flat = tuple(tree_flatten_spec((list(batch.args), dict(batch.kwargs)), gm._in_spec))
        with torch.no_grad():
            interp.run(*flat)
    except Exception as exc:  # noqa: BLE001 - the failure to describe
        if expected is not None and (type(exc) is not type(expected) or _first(exc) != _first(expected)):
            return None
        node = interp.current
        if node is None:
            return find_failure_site(exc, rerun=False)
        site = _describe(node, interp.current_inputs, gm, "")
        site.dtype_drift = interp.drift
        return site
    return None


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


# -- private steps ------------------------------------------------------------------------------------------------
def _innermost_first(exc: BaseException) -> list[BaseException]:
    chain, seen, e = [], set(), exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    return chain[::-1]


def _rerun_stripped_call(tb: list[tuple[FrameType, int]], exc: BaseException) -> FailureSite | None:
    """The site, by re-running, of the innermost GraphModule call whose traceback torch stripped
    (``_WrappedCall.__call__`` re-raises ``e.with_traceback(None)``)."""
    for frame, _ in reversed(tb):
        local = frame.f_locals
        if type(local.get("self")).__name__ == "_WrappedCall" and isinstance(local.get("obj"), fx.GraphModule) \
                and isinstance(local.get("args"), tuple) and not local.get("kwargs"):
            return rerun_under_interpreter(local["obj"], local["args"], exc)
    return None


def _node_of_frame(frame: FrameType, lineno: int) -> tuple[fx.Node, dict[str, Any], Any] | None:
    """(node, its runtime inputs by name, its GraphModule if known) when ``frame`` was executing a node."""
    local = frame.f_locals
    owner = local.get("self")
    if _is_generated_forward(frame.f_code.co_filename) and isinstance(owner, fx.GraphModule):
        node = _node_at_line(owner, frame.f_code.co_filename, lineno)
        if node is not None:
            values = {n.name: local[n.name] for n in node.all_input_nodes if n.name in local}
            return node, values, owner
    for name in ("n", "node", *local):
        value = local.get(name)
        if isinstance(value, fx.Node):
            args = local.get("args")  # Interpreter.run_node: the node's args, fetched (positional, like n.args)
            values = {a.name: v for a, v in zip(value.args, args) if isinstance(a, fx.Node)
                      and isinstance(v, torch.Tensor)} if isinstance(args, tuple) else {}
            gm = owner.module if isinstance(getattr(owner, "module", None), fx.GraphModule) else \
                value.graph.owning_module
            return value, values, gm
    return None


def _is_generated_forward(filename: str) -> bool:
    return filename.startswith("<eval_with_key>") or "fx_generated_" in filename


def _node_at_line(gm: fx.GraphModule, filename: str, lineno: int) -> fx.Node | None:
    """The node whose generated code is at ``lineno``: the name the line assigns (or the lineno map)."""
    by_name = {n.name: n for n in gm.graph.nodes}
    line = linecache.getline(filename, lineno)
    m = _ASSIGNED.match(line)
    if m and m.group(1) in by_name:
        return by_name[m.group(1)]
    if line.strip().startswith("return"):
        return next((n for n in gm.graph.nodes if n.op == "output"), None)
    index = (getattr(gm, "_lineno_map", None) or {}).get(lineno - getattr(gm, "_prologue_start", 0))
    nodes = list(gm.graph.nodes)
    return nodes[index] if index is not None and 0 <= index < len(nodes) else None


def _what_was_running(frames: list[tuple[FrameType, int]]) -> str:
    """The most telling graph runner on the stack: a pass before a partitioner ... before an interpreter."""
    runners: dict[str, str] = {}
    for frame, _ in frames:  # outermost first: the innermost of each kind wins
        owner = frame.f_locals.get("self")
        if owner is None:
            continue
        mro = {c.__name__ for c in type(owner).__mro__}
        for base, kind in _RUNNER_KINDS:
            if base in mro or (kind == "partitioner" and type(owner).__name__.endswith("Partitioner")):
                runners[kind] = f"{kind} {type(owner).__name__}"
                break
    return next((runners[kind] for _, kind in _RUNNER_KINDS if kind in runners), "")


def _describe(node: fx.Node, runtime: dict[str, Any], gm: Any, during: str,
              fallback: list[fx.Node] = ()) -> FailureSite:
    target_mod = _submodule(gm, node.target) if node.op == "call_module" else None
    observer = target_mod is not None and _is_observer(target_mod)
    if observer:
        during = f"observer '{node.target}' ({type(target_mod).__name__})"
    site = FailureSite(node=node.name, op=node.op, target=_target_text(node), during=during,
                       inputs=[_input_text(a, runtime) for a in node.all_input_nodes])
    if node.op == "call_module" and target_mod is not None and not observer:
        site.module, site.module_type = str(node.target), type(target_mod).__name__
    origin = _node_with_meta(node, list(fallback))
    if origin is not None:
        if not site.module:
            site.module, site.module_type = _module_of(origin, gm)
        site.source = _source_line(origin.meta.get("stack_trace"))
        if origin is not node:
            site.meta_from = origin.name
    return site


def _submodule(gm: Any, target: Any) -> torch.nn.Module | None:
    try:
        return gm.get_submodule(str(target)) if isinstance(gm, torch.nn.Module) else None
    except AttributeError:
        return None


def _is_observer(module: torch.nn.Module) -> bool:
    names = {c.__name__ for c in type(module).__mro__}
    return bool(names & {"ObserverBase", "FakeQuantizeBase"}) or "Observer" in type(module).__name__


def _target_text(node: fx.Node) -> str:
    t = node.target
    if isinstance(t, str):
        return t
    text = str(t)
    edge = re.match(r"<EdgeOpOverload: ([^>]+)>", text)  # executorch's edge ops print their schema too
    if edge:
        return edge.group(1)
    if isinstance(t, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
        return text  # aten.index.Tensor
    return getattr(t, "__name__", None) or text


def _input_text(n: fx.Node, runtime: dict[str, Any]) -> str:
    value = runtime.get(n.name, n.meta.get("val", n.meta.get("tensor_meta")))
    return f"{n.name}: {_value_text(value)}" if value is not None else n.name


def _value_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value_text(v) for v in value[:4]) + (", …" if len(value) > 4 else "") + "]"
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is None:
        return type(value).__name__
    try:
        dims = "(" + ", ".join(str(int(d)) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    except (TypeError, ValueError):
        dims = str(tuple(shape))
    return f"{dims} {str(dtype).replace('torch.', '')}" if dtype is not None else dims


def _node_with_meta(node: fx.Node, fallback: list[fx.Node], depth: int = 4) -> fx.Node | None:
    """``node`` if it carries its module (``nn_module_stack``), else the first of ``fallback`` that does, else
    the nearest input (then user) node that does; nodes with only a source line come last."""
    for key in ("nn_module_stack", "stack_trace"):
        if node.meta.get(key):
            return node
        hit = next((n for n in fallback if n.meta.get(key)), None)
        if hit is not None:
            return hit
        seen, frontier = {node}, [node]
        for _ in range(depth):
            nxt = []
            for n in frontier:
                for m in [*n.all_input_nodes, *n.users]:
                    if m not in seen and m.op not in ("placeholder", "output", "get_attr"):
                        seen.add(m)
                        nxt.append(m)
            hit = next((m for m in nxt if m.meta.get(key)), None)
            if hit is not None:
                return hit
            frontier = nxt
    return None


def _module_of(node: fx.Node, gm: Any) -> tuple[str, str]:
    stack = node.meta.get("nn_module_stack")
    if stack:
        path, typ = list(stack.values())[-1]
        type_name = typ.__name__ if isinstance(typ, type) else str(typ).rsplit(".", 1)[-1]
        return normalise_module_path(str(path)), type_name
    scope = getattr((getattr(gm, "meta", None) or {}).get("_observed_graph_module_attrs"), "node_name_to_scope", {})
    path, typ = scope.get(node.name, ("", None))
    return path, typ.__name__ if isinstance(typ, type) else ""


def _source_line(stack_trace: str | None) -> str:
    """The last frame of ``stack_trace`` outside torch/executorch/torchao, as ``file.py:12: code``."""
    if not stack_trace:
        return ""
    frames = [f for f in _FRAME.findall(stack_trace) if not any(p in f[0] for p in _LIBRARY_PATHS)]
    if not frames:
        return ""
    path, line, code = frames[-1]
    return f"{path.replace(chr(92), '/').rsplit('/', 1)[-1]}:{line}: {code.strip()}"


class _RecordingInterpreter(fx.Interpreter):
    """Runs a GraphModule node by node, remembering the node being run, its inputs, and the first node whose
    output dtype differs from the dtype it was traced with (``meta["val"]``)."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.extra_traceback = False
        self.current: fx.Node | None = None
        self.current_inputs: dict[str, Any] = {}
        self.drift = ""

    def run_node(self, n: fx.Node) -> Any:
        self.current = n
        self.current_inputs = {a.name: self.env[a] for a in n.all_input_nodes if a in self.env}
        out = super().run_node(n)
        traced = getattr(n.meta.get("val"), "dtype", None)
        got = getattr(out, "dtype", None)
        if not self.drift and traced is not None and got is not None and got != traced:
            consts = [f"'{a.name}' ({_value_text(self.env[a])})" for a in n.all_input_nodes
                      if a.op == "get_attr" and a in self.env]
            source = _source_line(n.meta.get("stack_trace"))
            self.drift = (f"node '{n.name}' ({_target_text(n)}{', ' + source if source else ''}) computes "
                          f"{str(got).replace('torch.', '')} where the traced graph has "
                          f"{str(traced).replace('torch.', '')}"
                          + (f", from the constant input {', '.join(consts)}" if consts else ""))
        return out
