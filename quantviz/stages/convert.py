"""convert: observers become quantize/dequantize ops around float ops (a reference quantized model)."""
from __future__ import annotations

from quantviz.backends import backend_of
from quantviz.config import PipelineConfig
from quantviz.model_spec import ModelSpec
from quantviz.stages.base import OTHER_FLOW, Remedy, Stage, StageContext, StageOutput

DESCRIPTION = "turn observers into decomposed quantize/dequantize ops around float ops (reference model)"
EXPLANATION = (
    'Replaces every observer with a quantize/dequantize pair, giving a reference quantized model: float '
    'ops between q and dq. Each dq-op-q group is one reference quantized pattern, which later stages '
    'delegate or fuse.'
)


def run(ctx: StageContext) -> StageOutput:
    observed = ctx.previous()
    if ctx.config.flow == "pt2e":
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        options = backend_of(ctx.config).convert_options
        extra = "".join(f", {k}={v!r}" for k, v in options.items())
        return StageOutput(convert_pt2e(observed, **options), calls=[
            "from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e",
            f"reference = convert_pt2e(observed{extra})"])
    from torch.ao.quantization.backend_config.executorch import get_executorch_backend_config
    from torch.ao.quantization.quantize_fx import _convert_to_reference_decomposed_fx

    reference = _convert_to_reference_decomposed_fx(observed, backend_config=get_executorch_backend_config())
    return StageOutput(reference, calls=[
        "from torch.ao.quantization.quantize_fx import _convert_to_reference_decomposed_fx",
        "from torch.ao.quantization.backend_config.executorch import get_executorch_backend_config",
        "reference = _convert_to_reference_decomposed_fx(observed, backend_config=get_executorch_backend_config())"])


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    if config.flow == "pt2e":
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        state["reference"] = convert_pt2e(state["observed"], **backend_of(config).convert_options)
        return
    from torch.ao.quantization.backend_config.executorch import get_executorch_backend_config
    from torch.ao.quantization.quantize_fx import _convert_to_reference_decomposed_fx

    state["reference"] = _convert_to_reference_decomposed_fx(state["observed"],
                                                             backend_config=get_executorch_backend_config())


STAGE = Stage(
    "convert", run, DESCRIPTION, EXPLANATION, reads=(),
    mutates_input=True,  # convert rewrites the observed module
    remedy=Remedy("try the other flow (--flow fx / --flow pt2e) or --mode static",
                  ({"flow": OTHER_FLOW}, {"mode": "static"})),
    bare=bare)
