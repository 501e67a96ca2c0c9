"""trace: make a graph of the float model.

fx flow: ``torch.fx.symbolic_trace`` semantics, with the skipped modules kept as leaves.
pt2e flow: ``torch.export.export`` of the float model (ATen graph).
"""
from __future__ import annotations

import traceback
from pathlib import Path

import torch
from torch import fx

from quantviz.errors import StageError
from quantviz.stages.base import StageContext, StageOutput

DESCRIPTION = "make the float model a graph (fx: symbolic_trace; pt2e: torch.export)"
EXPLANATION = (
    'Turns the float model into a graph. The fx flow uses torch.fx symbolic tracing, which runs forward '
    'with proxy values and fails on Python control flow that depends on tensors; such modules can be '
    'skipped and stay float. The pt2e flow uses torch.export, which follows the example input instead.'
)


class SkippingTracer(fx.Tracer):
    """``symbolic_trace`` that keeps the named modules as opaque calls and records source lines."""

    def __init__(self, skip: tuple[str, ...]) -> None:
        super().__init__()
        self.skip = set(skip)
        self.record_stack_traces = True

    def is_leaf_module(self, m: torch.nn.Module, qualname: str) -> bool:
        return qualname in self.skip or super().is_leaf_module(m, qualname)


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


def check_runs_eagerly(model: torch.nn.Module, inputs: tuple) -> None:
    """Run the float model once on its example inputs; a failure names the inputs given and the model's line."""
    try:
        with torch.no_grad():
            model(*inputs)
    except Exception as exc:  # noqa: BLE001 - the user's model failed: say so in its own words
        given = ", ".join(f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}" if isinstance(t, torch.Tensor)
                          else type(t).__name__ for t in inputs)
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/torch/" not in f.filename]
        where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}: {(frames[-1].line or '').strip()}" \
            if frames else ""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StageError("trace", f"the float model fails on its example inputs (given: {given}){where}: "
                                  f"{type(exc).__name__}: {first}",
                         "give example inputs of the shape and dtype the model expects (see the message), or fix "
                         "the model's forward", details="".join(traceback.format_exception(exc))) from exc


def run(ctx: StageContext) -> StageOutput:
    model, skip = ctx.spec.model, ctx.config.skip_modules
    check_skip_names(model, skip, "trace")
    check_runs_eagerly(model, ctx.spec.example_inputs)
    if ctx.config.flow == "pt2e":
        if ctx.spec.exported_program is not None:
            return StageOutput(ctx.spec.exported_program, calls=["ep = torch.export.load(path)"])
        ep = torch.export.export(model, ctx.spec.example_inputs)
        return StageOutput(ep, calls=["ep = torch.export.export(model, example_inputs)"])
    try:
        gm = symbolic_trace(model, skip)
    except Exception as exc:  # noqa: BLE001 - every trace failure is explained to the user
        raise explain_trace_error(model, exc) from exc
    call = "gm = torch.fx.symbolic_trace(model)" if not skip else \
        f"# {', '.join(skip)} kept as leaf module(s)\ngm = SkippingTracer({tuple(skip)!r}).trace(model)"
    return StageOutput(gm, calls=[call])


def explain_trace_error(model: torch.nn.Module, exc: Exception) -> StageError:
    """Name the innermost submodule whose forward raised, with its source line."""
    by_id = {id(m): name for name, m in model.named_modules()}
    culprit, where = None, None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        self_obj = frame.f_locals.get("self")
        filename = frame.f_code.co_filename
        if id(self_obj) in by_id and "/torch/" not in filename:
            culprit = by_id[id(self_obj)]
            code = traceback.FrameSummary(filename, lineno, frame.f_code.co_name).line or ""
            where = f"{Path(filename).name}:{lineno}: {code.strip()}"
    cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if culprit:
        message = f"module '{culprit}' ({type(model.get_submodule(culprit)).__name__}) is not symbolically " \
                  f"traceable at {where} ({cause})"
        hint = (f"skip it with --skip-module {culprit}: it stays a float call that prepare_fx does not trace "
                "(PrepareCustomConfig.non_traceable_module_names), or rewrite it without Python control flow on "
                "tensors")
    else:
        message = f"the model's forward is not symbolically traceable at {where or 'an unknown line'} ({cause})"
        hint = "move the untraceable code into a submodule and skip it with --skip-module NAME, or use --flow pt2e"
    return StageError("trace", message, hint, details="".join(traceback.format_exception(exc)))
