"""pt2e_quantize (export_llm): ``LLMEdgeManager.pt2e_quantize(quantizers)`` with the quantizers export_llm makes
for ``quantization.pt2e_quantize`` (prepare_pt2e, calibration on the example inputs, convert_pt2e); with none
(the usual XNNPACK configurations quantize in the source transforms) it passes the graph through, as export_llm
does."""
from __future__ import annotations

from quantviz.stages.base import Remedy, Stage, StageContext, StageOutput
from quantviz.stages.llm_source import READS

DESCRIPTION = "export_llm: PT2E quantization (quantization.pt2e_quantize), or nothing when it names none"
EXPLANATION = (
    "export_llm quantizes with PT2E here when the configuration names quantization.pt2e_quantize (prepare_pt2e, "
    "calibration, convert_pt2e). The XNNPACK configurations usually quantize in the source transforms instead "
    "(qmode 8da4w), and this step passes the graph on unchanged."
)


def run(ctx: StageContext) -> StageOutput:
    from executorch.examples.models.llama.export_llama_lib import get_quantizer_and_quant_params

    manager = ctx.previous()
    llm = manager.quantviz_llm_config
    params, quantizers, quant_dtype = get_quantizer_and_quant_params(llm)
    manager.quantviz_quant = (params, quantizers, quant_dtype)
    if params is not None and params.quantize_linear is not None:
        llm.backend.xnnpack.enabled = True  # export_llm forces XNNPACK on for PT2E linear quantization
    if not llm.backend.xnnpack.enabled:
        from quantviz.errors import StageError

        raise StageError("pt2e_quantize", "quantviz runs export_llm's XNNPACK lowering path only, and this "
                                          "configuration does not enable backend.xnnpack",
                         "add backend.xnnpack.enabled=True (the configurations under examples/models/*/config "
                         "that name XNNPACK), or run export_llm itself for the other backends")
    manager.pt2e_quantize(quantizers)
    names = [type(q).__name__ for q in quantizers]
    notes = [f"quantizers: {', '.join(names)}" if names else
             "no PT2E quantizer in this configuration (quantization.pt2e_quantize is unset): the graph passes "
             "through unchanged, as in export_llm"]
    return StageOutput(manager, graph_source=manager.pre_autograd_graph_module, notes=notes,
                       calls=["pt2e_quant_params, quantizers, quant_dtype = get_quantizer_and_quant_params(llm_config)",
                              "builder = builder.pt2e_quantize(quantizers)"])


STAGE = Stage("pt2e_quantize", run, DESCRIPTION, EXPLANATION, reads=READS, mutates_input=True,
              remedy=Remedy("check quantization.pt2e_quantize against the backend's quantizers"))
