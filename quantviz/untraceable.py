"""Find, in one run, every place torch.fx symbolic tracing cannot follow a model.

Tracing stops at the first line it cannot follow (``int(x.shape[-2])``, ``if x.sum() > 0:``). The finder
makes that failure a leaf and traces again, until the trace succeeds:

- a failing line inside a **module-level helper function** (``pad_same`` called by every ``Conv2dSame``):
  the helper is kept as one ``call_function`` node (torch.fx's ``wrap`` mechanism), so the layers around it
  are still traced and quantized;
- a failing line in a **module's own forward** (or one of its methods): that module becomes a leaf, i.e. it is
  skipped and stays float (``PrepareCustomConfig.set_non_traceable_module_names``).

Example::

    from quantviz.untraceable import find_untraceable, leaf_functions

    found = find_untraceable(model)
    for site in found.sites:
        print(site.action, site.function or site.module, site.where, site.reason)
    found.graph_module                     # the traced model (None when found.fixable is False)
    with leaf_functions(found.leaf_entries):
        observed = prepare_fx(model, qconfig_mapping, example_inputs, prepare_custom_config=
                              PrepareCustomConfig().set_non_traceable_module_names(list(found.skipped)))

The wrapping is scoped: ``leaf_functions`` registers ``(globals, name)`` entries in torch.fx's ``wrap`` registry
for the ``with`` block only (prepare_fx builds its own ``QuantizationTracer``, which takes no
``autowrap_functions``, but reads that registry).
"""
from __future__ import annotations

import contextlib
import inspect
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from torch import fx
from torch.fx import _symbolic_trace

# How a site is handled: a helper kept as one call, a module kept float, or nothing quantviz can do.
WRAP, SKIP, NONE = "wrap", "skip", "none"

# The attribute of the traced GraphModule that carries the finder's result to the prepare stage.
FINDINGS_ATTR = "quantviz_untraceable"

LeafEntry = tuple[dict, str]  # (a module's globals dict, a name in it): one entry of torch.fx's wrap registry


class SkippingTracer(fx.Tracer):
    """``symbolic_trace`` that keeps the named modules as opaque calls and records source lines."""

    def __init__(self, skip: Iterable[str]) -> None:
        super().__init__()
        self.skip = set(skip)
        self.record_stack_traces = True

    def is_leaf_module(self, m: torch.nn.Module, qualname: str) -> bool:
        return qualname in self.skip or super().is_leaf_module(m, qualname)


@dataclass
class UntraceableSite:
    """One place symbolic tracing could not follow, and what is done about it."""

    action: str          # "wrap": helper function kept as a leaf call; "skip": module stays float; "none": no remedy
    module: str          # qualified name of the innermost submodule running at the failure ("" = the model itself)
    module_class: str    # that module's class name
    function: str        # "wrap": the helper, as "python.module.name"; otherwise ""
    file: str            # source file of the failing line
    line: int            # its line number
    code: str            # the failing source line
    reason: str          # the exception, "TypeError: int() argument must be ..." (first line)
    callers: list[str] = field(default_factory=list)  # "wrap": every module whose forward calls it (final trace)
    details: str = field(default="", repr=False)      # the traceback (kept out of to_dict)

    @property
    def where(self) -> str:
        """``file.py:LINE: code``."""
        return f"{Path(self.file).name}:{self.line}: {self.code}"

    @property
    def name(self) -> str:
        """The helper's short name ("wrap") or the module's qualified name."""
        return self.function.rsplit(".", 1)[-1] if self.action == WRAP else self.module

    def describe(self, applied: bool = True) -> str:
        """One line: what fails, where, why, and what is (``applied``) or would be done about it."""
        owner = f"'{self.module}' ({self.module_class})" if self.module else f"the model ({self.module_class})"
        done = "" if applied else "would be "
        if self.action == WRAP:
            calls = f", called in {len(self.callers)} place(s)" if self.callers else ""
            return (f"helper function '{self.name}' (called from module {owner}{calls}) at {self.where} "
                    f"({self.reason}): {done}wrapped as a leaf call")
        if self.action == SKIP:
            return f"module {owner} at {self.where} ({self.reason}): {done}skipped, stays float"
        return f"the model's own forward at {self.where} ({self.reason}): cannot be skipped"

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "module": self.module, "module_class": self.module_class,
                "function": self.function, "file": self.file, "line": self.line, "code": self.code,
                "reason": self.reason, "callers": list(self.callers)}


@dataclass(frozen=True)
class Untraceable:
    """What :func:`find_untraceable` found: the sites, the remedies, and the trace they give."""

    sites: tuple[UntraceableSite, ...]  # in the order tracing met them
    skipped: tuple[str, ...]            # modules made leaves: the ``skip`` given plus the "skip" sites
    leaf_entries: tuple[LeafEntry, ...] = field(repr=False)  # torch.fx wrap registry entries for the "wrap" sites
    graph_module: fx.GraphModule | None = field(repr=False)  # the successful trace; None when not fixable
    traces: int = 1                     # how many times the model was traced

    @property
    def fixable(self) -> bool:
        return all(s.action != NONE for s in self.sites)

    @property
    def wrapped(self) -> tuple[UntraceableSite, ...]:
        return tuple(s for s in self.sites if s.action == WRAP)

    @property
    def skipped_sites(self) -> tuple[UntraceableSite, ...]:
        return tuple(s for s in self.sites if s.action == SKIP)

    def __deepcopy__(self, memo: dict) -> "Untraceable":
        return self  # immutable, and it refers to module globals, which must not be copied


@contextlib.contextmanager
def leaf_functions(entries: Iterable[LeafEntry]) -> Iterator[None]:
    """``torch.fx.wrap`` for the ``with`` block: each ``(globals, name)`` function is recorded as one
    ``call_function`` node by every symbolic trace (``fx.Tracer``, prepare_fx's ``QuantizationTracer``) instead of
    being traced through.

    On exit the registry is as before: the entries added are removed, and so are the ones torch adds itself while
    the block runs (a GraphModule's generated code calls ``wrap("...")`` for each wrapped call it makes, each time it
    is compiled) for these functions. Entries already registered are left alone. See :func:`unmark_leaf_calls` for
    GraphModules compiled later."""
    entries = list(entries)
    registry = _symbolic_trace._wrapped_fns_to_patch
    before = set(registry)
    functions = {id(namespace[name]) for namespace, name in entries if name in namespace}
    for namespace, name in entries:
        registry.setdefault((id(namespace), name), namespace)
    try:
        yield
    finally:
        for key in set(registry) - before:
            if id(registry[key].get(key[1])) in functions:
                del registry[key]


def unmark_leaf_calls(gm: fx.GraphModule, entries: Iterable[LeafEntry]) -> fx.GraphModule:
    """Clear the ``is_wrapped`` mark of ``gm``'s calls to these functions, so compiling ``gm`` again later (a deep
    copy, convert_fx) does not register them with torch.fx's ``wrap`` for good. The calls stay in the graph and its
    code; only tracing the GraphModule itself again would now go into them."""
    functions = {id(namespace[name]) for namespace, name in entries if name in namespace}
    for n in gm.graph.nodes:
        if n.op == "call_function" and n.meta.get("is_wrapped") and id(n.target) in functions:
            del n.meta["is_wrapped"]
    return gm


def find_untraceable(model: torch.nn.Module, skip: Iterable[str] = ()) -> Untraceable:
    """Trace ``model`` (modules in ``skip`` kept as leaves), making each failure a leaf and tracing again, until the
    trace succeeds or a failure has no remedy. One trace when the model traces as it is."""
    skipped = list(dict.fromkeys(skip))
    entries: list[LeafEntry] = []
    sites: list[UntraceableSite] = []
    limit = sum(1 for _ in model.modules()) + 64  # each round adds a leaf module or a registry entry
    for traces in range(1, limit + 1):
        try:
            with leaf_functions(entries):
                gm = _trace(model, skipped)
        except Exception as exc:  # noqa: BLE001 - every failure is a site
            site, new_entries = _locate(model, exc, skipped, entries)
            known = next((s for s in sites if s.action == WRAP and s.function == site.function), None) \
                if site.action == WRAP else None
            if known is None:
                sites.append(site)
            if site.action == NONE:
                return Untraceable(tuple(sites), tuple(skipped), tuple(entries), None, traces)
            if site.action == SKIP:
                skipped.append(site.module)
            entries.extend(new_entries)
            continue
        sites = _prune(sites, gm, skipped)
        unmark_leaf_calls(gm, entries)
        return Untraceable(tuple(sites), tuple(s for s in skipped if s in _kept(skipped)), tuple(entries), gm,
                           traces)
    raise RuntimeError(f"symbolic tracing still fails after {limit} rounds of making failures leaves")


def _trace(model: torch.nn.Module, skip: list[str]) -> fx.GraphModule:
    tracer = SkippingTracer(skip)
    graph = tracer.trace(model)
    return fx.GraphModule(tracer.root, graph, type(model).__name__)


def _locate(model: torch.nn.Module, exc: BaseException, skipped: list[str],
            entries: list[LeafEntry]) -> tuple[UntraceableSite, list[LeafEntry]]:
    """The site of a trace failure: the innermost user-code frame inside the model's forward, the innermost module
    running there, and whether a module-level helper between them can be wrapped (else the module is skipped)."""
    by_id = {id(m): name for name, m in model.named_modules()}
    frames = [(f, n) for f, n in traceback.walk_tb(exc.__traceback__)]
    start = next((i for i, (f, _) in enumerate(frames) if f.f_locals.get("self") is model), None)
    user = [(f, n) for f, n in frames[start or 0:] if _is_user_code(f)] if start is not None else []
    text = str(exc).strip()
    reason = f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
    details = "".join(traceback.format_exception(exc))
    if not user:
        return UntraceableSite(NONE, "", type(model).__name__, "", "?", 0, "", reason, details=details), []
    frame, lineno = user[-1]
    code = (traceback.FrameSummary(frame.f_code.co_filename, lineno, frame.f_code.co_name).line or "").strip()
    owner_at = max((i for i, (f, _) in enumerate(user) if id(f.f_locals.get("self")) in by_id), default=-1)
    owner = by_id[id(user[owner_at][0].f_locals["self"])] if owner_at >= 0 else ""
    owner_class = type(model.get_submodule(owner)).__name__ if owner else type(model).__name__

    def site(action: str, function: str = "") -> UntraceableSite:
        return UntraceableSite(action, owner, owner_class, function, frame.f_code.co_filename, lineno, code, reason,
                               details=details)

    # innermost module-level function called (directly or not) from the owner's forward
    for i in range(len(user) - 1, owner_at, -1):
        fn = _module_level_function(user[i][0])
        if fn is None:
            continue
        new = _registry_entries(user[i][0], user[max(i - 1, 0)][0], fn)
        new = [e for e in new if all(e[0] is not g or e[1] != n for g, n in entries)]
        if new:
            return site(WRAP, f"{fn.__module__}.{fn.__qualname__}"), new
    if owner and owner not in skipped:
        return site(SKIP), []
    return site(NONE), []


def _is_user_code(frame: types.FrameType) -> bool:
    name = frame.f_code.co_filename
    return "/torch/" not in name and "<eval_with_key>" not in name and name != __file__  # not fx's generated code


def _module_level_function(frame: types.FrameType) -> Any:
    """The function object a frame runs when it is defined at module level (found in its globals), else None."""
    code = frame.f_code
    if code.co_qualname != code.co_name:
        return None  # a method, or a function nested in another
    obj = frame.f_globals.get(code.co_name)
    try:
        return obj if obj is not None and getattr(inspect.unwrap(obj), "__code__", None) is code else None
    except ValueError:  # a cycle of __wrapped__
        return None


def _registry_entries(frame: types.FrameType, caller: types.FrameType, fn: Any) -> list[LeafEntry]:
    """Where ``fn`` is looked up: its own module's globals, and the caller's when it imported it (``from helpers
    import pad_same`` binds the name there too)."""
    found = [(frame.f_globals, frame.f_code.co_name)]
    if caller.f_globals is not frame.f_globals:
        found += [(caller.f_globals, k) for k, v in caller.f_globals.items() if v is fn]
    return found


def _kept(skipped: list[str]) -> set[str]:
    """The skipped modules not inside another skipped module (those are never reached)."""
    return {s for s in skipped if not any(s.startswith(p + ".") for p in skipped if p)}


def _prune(sites: list[UntraceableSite], gm: fx.GraphModule, skipped: list[str]) -> list[UntraceableSite]:
    """Fill each wrapped helper's callers from the final graph; drop helpers it never calls and modules inside a
    skipped module (both made moot by a later site)."""
    kept_modules = _kept(skipped)
    out = []
    for s in sites:
        if s.action == WRAP:
            nodes = [n for n in gm.graph.nodes if n.op == "call_function" and n.meta.get("is_wrapped")
                     and f"{getattr(n.target, '__module__', '')}.{getattr(n.target, '__qualname__', '')}" == s.function]
            if not nodes:
                continue
            s.callers = [_innermost_module(n) for n in nodes]
        elif s.action == SKIP and s.module not in kept_modules:
            continue
        out.append(s)
    return out


def _innermost_module(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack.values()))[0] if stack else ""
