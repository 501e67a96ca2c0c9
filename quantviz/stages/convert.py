"""convert: observers become quantize/dequantize ops around float ops (a reference quantized model)."""
from __future__ import annotations

from quantviz.stages.base import StageContext, StageOutput

DESCRIPTION = "turn observers into decomposed quantize/dequantize ops around float ops (reference model)"
EXPLANATION = (
    'Replaces every observer with a quantize/dequantize pair, giving a reference quantized model: float '
    'ops between q and dq. Each dq-op-q group is one reference quantized pattern, which later stages '
    'delegate or fuse.'
)


def run(ctx: StageContext) -> StageOutput:
    observed = ctx.artifact("calibrate")
    if ctx.config.flow == "pt2e":
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        return StageOutput(convert_pt2e(observed), calls=[
            "from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e",
            "reference = convert_pt2e(observed)"])
    from torch.ao.quantization.backend_config.executorch import get_executorch_backend_config
    from torch.ao.quantization.quantize_fx import _convert_to_reference_decomposed_fx

    reference = _convert_to_reference_decomposed_fx(observed, backend_config=get_executorch_backend_config())
    return StageOutput(reference, calls=[
        "from torch.ao.quantization.quantize_fx import _convert_to_reference_decomposed_fx",
        "from torch.ao.quantization.backend_config.executorch import get_executorch_backend_config",
        "reference = _convert_to_reference_decomposed_fx(observed, backend_config=get_executorch_backend_config())"])
