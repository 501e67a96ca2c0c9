"""capture: torch.export the reference quantized model to the ATen dialect."""
from __future__ import annotations

import torch

from quantviz.config import PipelineConfig
from quantviz.model_spec import ModelSpec
from quantviz.passes.fold_weight_quantize import fold_weight_quantize
from quantviz.passes.scalar_qparams import scalar_qparams
from quantviz.stages.base import Remedy, Stage, StageContext, StageOutput

DESCRIPTION = "torch.export.export the quantized model (the reference q/dq model, or torchao's quantize_ output)"
EXPLANATION = (
    'torch.export captures the reference model as an ATen-dialect program: every module call becomes ATen '
    'operators, and the q/dq ops stay as they are. In the torchao flow the quantized weights are tensor '
    'subclasses: export unwraps them into int weights with their scales and torchao\'s affine q/dq ops.'
)


def run(ctx: StageContext) -> StageOutput:
    source = "quantized" if ctx.config.flow == "torchao" else "reference"
    ep = torch.export.export(ctx.previous(), ctx.spec.example_inputs)
    return StageOutput(ep, calls=[f"aten_program = torch.export.export({source}, example_inputs)"])


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    """``torch.export.export`` of the quantized model; the fx reference model also needs quantviz's two small
    weight passes to run in ExecuTorch at all (README, limitations)."""
    ep = torch.export.export(state["reference"], spec.example_inputs)
    if config.flow == "fx":
        ep, _ = fold_weight_quantize(ep)
        ep, _ = scalar_qparams(ep)
    state["aten"] = ep


STAGE = Stage(
    "capture", run, DESCRIPTION, EXPLANATION, reads=(),
    remedy=Remedy("torch.export could not capture the quantized model; try --flow pt2e", ({"flow": "pt2e"},)),
    bare=bare)
