"""convert (pt2e): ``convert_pt2e`` with the backend's options (``Backend.convert_options``)."""
from __future__ import annotations

from quantviz.backends import backend_of
from quantviz.config import PipelineConfig
from quantviz.model_spec import ModelSpec
from quantviz.stages.base import Stage, StageContext, StageOutput
from quantviz.stages.convert import DESCRIPTION, EXPLANATION, remedy


def run(ctx: StageContext) -> StageOutput:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    options = ctx.backend.convert_options
    extra = "".join(f", {k}={v!r}" for k, v in options.items())
    return StageOutput(convert_pt2e(ctx.previous(), **options), calls=[
        "from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e",
        f"reference = convert_pt2e(observed{extra})"])


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    state["reference"] = convert_pt2e(state["observed"], **backend_of(config).convert_options)


STAGE = Stage("convert", run, DESCRIPTION, EXPLANATION, reads=(),
              mutates_input=True,  # convert rewrites the observed module
              remedy=remedy(other_flow="fx"), bare=bare, variant="convert_pt2e")
