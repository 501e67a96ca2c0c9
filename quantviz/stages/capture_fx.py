"""capture (fx): ``torch.export.export`` of the fx reference model; its bare call also applies quantviz's two small
weight passes, which that model needs to run in ExecuTorch at all (README, limitations; the edge_fx stage applies
them in quantviz's own run, where they show)."""
from __future__ import annotations

import dataclasses

from quantviz.config import PipelineConfig
from quantviz.model_spec import ModelSpec
from quantviz.passes.fold_weight_quantize import fold_weight_quantize
from quantviz.passes.scalar_qparams import scalar_qparams
from quantviz.stages import capture


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    capture.bare(spec, config, state)
    state["aten"], _ = fold_weight_quantize(state["aten"])
    state["aten"], _ = scalar_qparams(state["aten"])


STAGE = dataclasses.replace(capture.STAGE, bare=bare, variant="capture_fx")
