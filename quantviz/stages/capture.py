"""capture: torch.export the quantized model to the ATen dialect (the reference q/dq model convert made, or
torchao's quantize_ output). ``capture_fx.py`` is its variant for the fx reference model, whose bare call needs
quantviz's two small weight passes to run in ExecuTorch at all."""
from __future__ import annotations

import torch

from quantviz.config import PipelineConfig
from quantviz.model_spec import ModelSpec
from quantviz.stages.base import Remedy, Stage, StageContext, StageOutput

DESCRIPTION = "torch.export.export the quantized model (the reference q/dq model, or torchao's quantize_ output)"
EXPLANATION = (
    'torch.export captures the reference model as an ATen-dialect program: every module call becomes ATen '
    'operators, and the q/dq ops stay as they are. In the torchao flow the quantized weights are tensor '
    'subclasses: export unwraps them into int weights with their scales and torchao\'s affine q/dq ops.'
)
# the variable a user's script holds the model in, by the stage that made it (the reproduce script's names)
SOURCE_NAMES = {"quantize": "quantized"}


def run(ctx: StageContext) -> StageOutput:
    before = ctx.flow.before(ctx.stage) if ctx.flow is not None else None
    source = SOURCE_NAMES.get(before or "", "reference")
    model = ctx.previous()
    ep = ctx.spec.export(model)
    calls = [f"aten_program = {ctx.spec.export_call(source)}"]
    # the model's other methods (decode beside a prefill forward): exported from the same quantized model, kept
    # beside forward's program (the graph the pages show); the edge stage lowers them together
    methods = ctx.spec.export_methods(model)
    notes = []
    if methods:
        calls.append("from quantviz.model_spec import method_module  # a module whose forward is the model's method")
        for m in ctx.spec.methods:
            example = f"spec.method({m.name!r})"
            calls.append(f"{m.name}_program = torch.export.export(method_module({source}, {m.attribute!r}), "
                         f"{example}.example_inputs, kwargs={example}.example_kwargs or None, "
                         f"dynamic_shapes={example}.dynamic_shapes)")
        calls.append(f"aten_program = {{'forward': aten_program, "
                     f"{', '.join(f'{n!r}: {n}_program' for n in methods)}}}  # lowered together, as one dict")
        notes.append(f"{len(ctx.spec.method_names)} methods exported from the same quantized model: "
                     f"{', '.join(ctx.spec.method_names)} (this page shows forward's graph; "
                     + "; ".join(f"{n}: {_nodes(p)} nodes" for n, p in methods.items()) + ")")
    return StageOutput(ep, calls=calls, notes=notes, methods=methods,
                       metrics={"methods": len(ctx.spec.method_names)} if methods else {})


def _nodes(program) -> int:
    return len(program.graph.nodes)


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    """``torch.export.export`` of the quantized model (and of each of its other methods, ``ModelSpec.methods``)."""
    state["aten"] = spec.export(state["reference"])
    if spec.methods:
        state["aten"] = {"forward": state["aten"], **spec.export_methods(state["reference"])}


REMEDY = Remedy("torch.export could not capture the quantized model; try --flow pt2e", ({"flow": "pt2e"},))

STAGE = Stage("capture", run, DESCRIPTION, EXPLANATION, reads=(), remedy=REMEDY, bare=bare)
