"""trace, the slot's shared helpers: make a graph of the float model.

The variants are one file each: ``trace_fx.py`` (``torch.fx.symbolic_trace`` semantics, with the skipped modules
kept as leaves; every place tracing cannot follow is found in one run, ``quantviz.untraceable``) and
``trace_export.py`` (``torch.export.export`` of the float model, the ATen graph prepare_pt2e and quantize_ start
from). This module holds what they share: the eager check, skip-name check, the untraceable report.
"""
from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import torch
from torch import fx

from quantviz.errors import StageError
from quantviz.model_spec import as_batch, call
from quantviz.stages.base import Remedy, StageContext
from quantviz.untraceable import FINDINGS_ATTR, SkippingTracer, Untraceable

__all__ = ["DESCRIPTION", "EXPLANATION", "REMEDY", "SkippingTracer", "check_runs_eagerly", "check_skip_names",
           "symbolic_trace"]

DESCRIPTION = "make the float model a graph (fx: symbolic_trace; pt2e: torch.export)"
EXPLANATION = (
    'Turns the float model into a graph. The fx flow uses torch.fx symbolic tracing, which runs forward '
    'with proxy values and fails on Python control flow that depends on tensors. All such places are found '
    'in one run: a module-level helper function can be kept as one leaf call (the layers around it are still '
    'quantized), a module whose own forward branches on tensors is skipped and stays float. The pt2e flow uses '
    'torch.export, which follows the example input instead. The torchao flow exports the float model too, to '
    'show the graph quantize_ starts from.'
)


def check_skip_names(model: torch.nn.Module, skip: tuple[str, ...], stage: str) -> None:
    names = {n for n, _ in model.named_modules() if n}
    unknown = [s for s in skip if s not in names]
    if unknown:
        sample = ", ".join(sorted(names)[:12])
        raise StageError(stage, f"--skip-module names no submodule of the model: {', '.join(unknown)}",
                         f"use a qualified submodule name such as: {sample}")


def symbolic_trace(model: torch.nn.Module, skip: tuple[str, ...] = ()) -> fx.GraphModule:
    tracer = SkippingTracer(skip)
    graph = tracer.trace(model)
    return fx.GraphModule(tracer.root, graph, type(model).__name__)


def check_runs_eagerly(model: torch.nn.Module, inputs: Any) -> None:
    """Run the float model once on its example inputs (a tuple, or a ``Batch`` with keyword inputs); a failure
    names the inputs given and the model's line."""
    batch = as_batch(inputs)
    try:
        with torch.no_grad():
            call(model, batch)
    except Exception as exc:  # noqa: BLE001 - the user's model failed: say so in its own words
        def describe(t: Any) -> str:
            if isinstance(t, torch.Tensor):
                return f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"
            if isinstance(t, dict):
                return "{" + ", ".join(f"{k!r}: {describe(v)}" for k, v in t.items()) + "}"
            return type(t).__name__
        given = ", ".join([*(describe(t) for t in batch.args),
                           *(f"{k}={describe(v)}" for k, v in batch.kwargs.items())])
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/torch/" not in f.filename]
        where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}: {(frames[-1].line or '').strip()}" \
            if frames else ""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StageError("trace", f"the float model fails on its example inputs (given: {given}){where}: "
                                  f"{type(exc).__name__}: {first}",
                         "give example inputs of the shape and dtype the model expects (see the message), or fix "
                         "the model's forward", details="".join(traceback.format_exception(exc))) from exc


def refuse_structured(spec: Any, stage: str, why: str, what: str | None = None,
                      fix: dict[str, Any] | None = None) -> None:
    """A flow that takes positional inputs of fixed shapes only refuses, at its first stage, a model whose spec has
    keyword inputs or declared dynamic dimensions (``what``: those of them it cannot take, default
    ``ModelSpec.structured``): the cause, and ``--flow pt2e`` as the fix (torch.export takes both as they are;
    ``fix``: the config changes that apply it, when more than the flow has to change)."""
    what = spec.structured if what is None else what
    if not what:
        return
    raise StageError(stage, f"the model's {what} cannot go through {why}",
                     "use --flow pt2e (or --flow torchao): torch.export takes keyword and nested inputs and "
                     "dynamic_shapes as the model's forward takes them", fix=fix or {"flow": "pt2e"},
                     metrics={"keyword_inputs": len(spec.example_kwargs),
                              "dynamic_shapes": int(spec.dynamic_shapes is not None)})


def check_float_model(ctx: StageContext) -> None:
    """What every trace variant checks first: the skipped names exist and the float model runs eagerly."""
    check_skip_names(ctx.spec.model, ctx.config.skip_modules, "trace")
    check_runs_eagerly(ctx.spec.model, ctx.spec.example)


def attach(found: Untraceable) -> fx.GraphModule:
    """The traced GraphModule, carrying the findings for the prepare stage (``FINDINGS_ATTR``)."""
    gm = found.graph_module
    setattr(gm, FINDINGS_ATTR, found)
    return gm


def untraceable_notes(found: Untraceable) -> list[str]:
    notes = [f"wrapped helper function '{s.name}' ({s.function}) as a leaf call in {len(s.callers)} place(s): "
             f"the layers around it are traced and quantized; it runs in float" for s in found.wrapped]
    notes += [f"skipped module '{s.module}' ({s.module_class}): not traceable at {s.where}; it stays float"
              for s in found.skipped_sites]
    return notes


def untraceable_calls(found: Untraceable) -> list[str]:
    """The calls that reproduce the trace: torch.fx's wrap registry (scoped) for the helpers, leaf modules."""
    entries = ", ".join(f"(vars(importlib.import_module({namespace['__name__']!r})), {name!r})"
                        for namespace, name in found.leaf_entries)
    helpers = ", ".join(s.name for s in found.wrapped) or "no helper"
    trace = f"gm = torch.fx.GraphModule(model, SkippingTracer({tuple(found.skipped)!r}).trace(model))"
    if found.skipped:
        trace += f"  # {', '.join(found.skipped)} kept as float leaf module(s)"
    return ["import importlib",
            "from quantviz.untraceable import leaf_functions  # torch.fx.wrap's registry, for the with-block only",
            f"leaf_entries = [{entries}]",
            f"with leaf_functions(leaf_entries):  # {helpers}: one call_function node each, not traced into",
            f"    {trace}"]


# skipping modules that hold at least this share of the model's weights leaves too little quantized to offer it
# first: torch.export (the pt2e flow) follows the example input through the code symbolic tracing cannot
MOST_OF_THE_MODEL = 0.5


def skipped_weight_share(model: torch.nn.Module, modules: tuple[str, ...]) -> float:
    """The share of ``model``'s parameters inside the submodules ``modules`` (0 for a model without parameters).

    Example::

        skipped_weight_share(llama, ("model",))   # 0.99: every decoder layer sits in 'model'
    """
    total = sum(p.numel() for p in model.parameters())
    named = dict(model.named_modules())
    inside = {id(p): p.numel() for m in modules if m in named for p in named[m].parameters()}
    return sum(inside.values()) / total if total else 0.0


def untraceable_error(found: Untraceable, skipped_share: float = 0.0) -> StageError:
    """One StageError for every site found: what fails, where, and what ``--skip-untraceable`` does about it;
    ``skipped_share`` (``skipped_weight_share`` of the modules it would skip) at or above ``MOST_OF_THE_MODEL``
    makes ``--flow pt2e`` the fix, since skipping would keep most of the model float."""
    sites, details = found.sites, "\n".join(s.details for s in found.sites)
    metrics = {"wrapped_functions": len(found.wrapped), "skipped_modules": len(found.skipped_sites)}
    if not found.fixable:
        last = sites[-1]
        before = "" if len(sites) == 1 else "; before it: " + "; ".join(s.describe(False) for s in sites[:-1])
        return StageError("trace", f"the model's forward is not symbolically traceable at {last.where} "
                                   f"({last.reason}){before}",
                          "move the untraceable code into a submodule and skip it with --skip-module NAME, or use "
                          "--flow pt2e", details=details, metrics=metrics)
    wrap = [s.name for s in found.wrapped]
    skip = [s.module for s in found.skipped_sites]
    if len(sites) == 1 and skip:  # one module: the message reads as it always has
        s = sites[0]
        message = f"module '{s.module}' ({s.module_class}) is not symbolically traceable at {s.where} ({s.reason})"
    else:
        message = f"{len(sites)} place{'s are' if len(sites) > 1 else ' is'} not symbolically traceable: " + \
            "; ".join(f"({i}) {s.describe(applied=False)}" for i, s in enumerate(sites, 1))
    remedy = []
    if wrap:
        remedy.append(f"keep the helper function(s) {', '.join(wrap)} as leaf calls (torch.fx.wrap), so the layers "
                      "calling them are still traced and quantized")
    if skip:
        remedy.append(f"skip the module(s) {', '.join(skip)}: they stay float calls that prepare_fx does not trace "
                      "(PrepareCustomConfig.non_traceable_module_names)")
    hint = f"rerun with --skip-untraceable to {' and '.join(remedy)}, all in one run"
    if skip and not wrap:
        hint += f"; or skip with {' '.join(f'--skip-module {m}' for m in skip)}"
    hint += "; or rewrite that code without Python control flow on tensors"
    if skip and skipped_share >= MOST_OF_THE_MODEL:
        hint = (f"rerun with --flow pt2e: torch.export follows the example input through that code, so the whole "
                f"model is traced and quantized, where --skip-untraceable would keep {skipped_share:.0%} of the "
                f"model's weights float (module(s) {', '.join(skip)}). Otherwise " + hint)
        return StageError("trace", message, hint, details=details, metrics=metrics, fix={"flow": "pt2e"})
    return StageError("trace", message, hint, details=details, metrics=metrics, fix={"skip_untraceable": True})


REMEDY = Remedy("check that the model runs eagerly on its example inputs; skip untraceable modules with "
                "--skip-module")
