"""The PT2E QAT stages (``--flow qat_pt2e``): ``prepare_qat_pt2e`` with XNNPACKQuantizer's QAT config
(``get_symmetric_quantization_config(is_per_channel=..., is_qat=True)``: fake quantizers with learnable-range
observers in the exported graph), the qat flow's ``train`` stage (the float model's outputs as the target; an
exported model goes to train mode with ``move_exported_model_to_train``), then ``move_exported_model_to_eval`` and
``convert_pt2e``. Only the backends whose record says so have it here (``Backend.pt2e_qat``: portable, xnnpack)."""
from __future__ import annotations

from quantviz.errors import StageError
from quantviz.stages.base import Remedy, Stage, StageContext, StageOutput


def prepare(ctx: StageContext) -> StageOutput:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    if not ctx.backend.pt2e_qat:
        raise StageError("prepare_qat_pt2e", f"quantviz runs PT2E QAT with XNNPACKQuantizer's QAT config only, and "
                                             f"backend {ctx.backend.name!r} quantizes with another quantizer",
                         "use --backend xnnpack, or --flow qat (torchao QAT, lowered to XNNPACK)",
                         fix={"backend": "xnnpack"})
    qconfig = get_symmetric_quantization_config(is_per_channel=ctx.config.per_channel, is_qat=True)
    prepared = prepare_qat_pt2e(ctx.previous().module(), XNNPACKQuantizer().set_global(qconfig))
    fake = sum(1 for m in prepared.modules() if "FakeQuantize" in type(m).__name__)
    return StageOutput(prepared, metrics={"fake_quantizers": fake},
                       notes=[f"{fake} fake quantizer(s) in the exported graph (int8, symmetric weights "
                              f"{'per channel' if ctx.config.per_channel else 'per tensor'})"],
                       calls=["from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e",
                              "qconfig = get_symmetric_quantization_config(is_per_channel="
                              f"{ctx.config.per_channel}, is_qat=True)",
                              "prepared = prepare_qat_pt2e(ep.module(), XNNPACKQuantizer().set_global(qconfig))"])


def convert(ctx: StageContext) -> StageOutput:
    import copy

    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    model = copy.deepcopy(ctx.previous().model)
    move_exported_model_to_eval(model)
    return StageOutput(convert_pt2e(model), calls=["move_exported_model_to_eval(prepared)",
                                                   "reference = convert_pt2e(prepared)"])


PREPARE = Stage("prepare_qat_pt2e", prepare, "prepare_qat_pt2e with XNNPACKQuantizer's QAT config",
                "The exported graph gets fake quantizers (not observers) around each quantizable op, so training "
                "sees the rounding.", reads=("per_channel", "backend"),
                remedy=Remedy("try --flow qat", ({"flow": "qat"},)))
CONVERT = Stage("convert_qat_pt2e", convert, "move_exported_model_to_eval, convert_pt2e: the reference model",
                "The fine-tuned graph goes to eval mode and convert_pt2e turns its fake quantizers into "
                "quantize/dequantize pairs with the ranges they learned.", reads=("per_channel",),
                remedy=Remedy("try --flow pt2e (post-training)", ({"flow": "pt2e"},)))
