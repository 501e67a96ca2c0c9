"""trace (export): ``torch.export.export`` of the float model, the ATen graph ``prepare_pt2e`` and ``quantize_``
start from (or the user's own ExportedProgram when the model was loaded from a ``.pt2``).

torch.export traces the whole model whatever is skipped (prepare leaves those modules unannotated), so a layer kept
float re-runs from prepare, not from here.
"""
from __future__ import annotations

import torch

from quantviz.config import PipelineConfig
from quantviz.model_spec import ModelSpec
from quantviz.stages.base import Stage, StageContext, StageOutput
from quantviz.stages.trace import DESCRIPTION, EXPLANATION, REMEDY, check_float_model


def run(ctx: StageContext) -> StageOutput:
    check_float_model(ctx)
    if ctx.spec.exported_program is not None:
        return StageOutput(ctx.spec.exported_program, calls=["ep = torch.export.load(path)"])
    ep = ctx.spec.export()
    return StageOutput(ep, calls=[f"ep = {ctx.spec.export_call()}"])


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    """``torch.export.export(model, example_inputs, kwargs=example_kwargs, dynamic_shapes=dynamic_shapes)``."""
    state["ep"] = spec.export()


STAGE = Stage("trace", run, DESCRIPTION, EXPLANATION, reads=("flow",), remedy=REMEDY, bare=bare,
              variant="trace_export")
