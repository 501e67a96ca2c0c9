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
    ep = ctx.spec.export(ctx.previous())
    return StageOutput(ep, calls=[f"aten_program = {ctx.spec.export_call(source)}"])


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    """``torch.export.export`` of the quantized model."""
    state["aten"] = spec.export(state["reference"])


REMEDY = Remedy("torch.export could not capture the quantized model; try --flow pt2e", ({"flow": "pt2e"},))

STAGE = Stage("capture", run, DESCRIPTION, EXPLANATION, reads=(), remedy=REMEDY, bare=bare)
