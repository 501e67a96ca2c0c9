"""capture: torch.export the reference quantized model to the ATen dialect."""
from __future__ import annotations

import torch

from quantviz.stages.base import StageContext, StageOutput

DESCRIPTION = "torch.export.export the reference quantized model (ATen dialect)"
EXPLANATION = (
    'torch.export captures the reference model as an ATen-dialect program: every module call becomes ATen '
    'operators, and the q/dq ops stay as they are.'
)


def run(ctx: StageContext) -> StageOutput:
    ep = torch.export.export(ctx.artifact("convert"), ctx.spec.example_inputs)
    return StageOutput(ep, calls=["aten_program = torch.export.export(reference, example_inputs)"])
