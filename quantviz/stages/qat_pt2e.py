"""The PT2E QAT stages (``--flow qat_pt2e``): ``prepare_qat_pt2e`` with XNNPACKQuantizer's QAT config
(``get_symmetric_quantization_config(is_per_channel=..., is_qat=True)``: fake quantizers with learnable-range
observers in the exported graph), the qat flow's ``train`` stage (the float model's outputs as the target; an
exported model goes to train mode with ``move_exported_model_to_train``), then ``move_exported_model_to_eval`` and
``convert_pt2e``. Only the backends whose record says so have it here (``Backend.pt2e_qat``: portable, xnnpack)."""
from __future__ import annotations

import torch

from quantviz.backends import backend_of
from quantviz.config import PipelineConfig
from quantviz.errors import StageError
from quantviz.model_spec import ModelSpec
from quantviz.stages.base import Diagnostics, Remedy, Stage, StageContext, StageOutput
from quantviz.stages.qat_qparams import compare_pt2e


def fake_quantized(ep: torch.export.ExportedProgram, config: PipelineConfig,
                   own_passes: bool = True) -> torch.fx.GraphModule:
    """``prepare_qat_pt2e(ep.module(), XNNPACKQuantizer().set_global(<its QAT config>))``; with ``own_passes``,
    quantviz's ``keep_integer_scalars`` first when the config asks for it (not a bare call)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    backend = backend_of(config)
    if not backend.pt2e_qat:
        raise StageError("prepare_qat_pt2e", f"quantviz runs PT2E QAT with XNNPACKQuantizer's QAT config only, and "
                                             f"backend {backend.name!r} quantizes with another quantizer",
                         "use --backend xnnpack, or --flow qat (torchao QAT, lowered to XNNPACK)",
                         fix={"backend": "xnnpack"})
    qconfig = get_symmetric_quantization_config(is_per_channel=config.per_channel, is_qat=True)
    gm = ep.module()
    if own_passes and config.keep_integer_scalars:  # as the pt2e flow's prepare: index arithmetic stays integer
        from quantviz.passes.keep_integer_scalars import keep_integer_scalars

        gm, _ = keep_integer_scalars(gm)
    return prepare_qat_pt2e(gm, XNNPACKQuantizer().set_global(qconfig))


def prepare(ctx: StageContext) -> StageOutput:
    prepared = fake_quantized(ctx.previous(), ctx.config)
    fake = sum(1 for m in prepared.modules() if "FakeQuantize" in type(m).__name__)
    return StageOutput(prepared, metrics={"fake_quantizers": fake},
                       notes=[f"{fake} fake quantizer(s) in the exported graph (int8, symmetric weights "
                              f"{'per channel' if ctx.config.per_channel else 'per tensor'})"],
                       calls=["from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e",
                              "qconfig = get_symmetric_quantization_config(is_per_channel="
                              f"{ctx.config.per_channel}, is_qat=True)",
                              *(["from quantviz.passes.keep_integer_scalars import keep_integer_scalars",
                                 "gm, _ = keep_integer_scalars(ep.module())  # integer add/mul keep integer scalars",
                                 "prepared = prepare_qat_pt2e(gm, XNNPACKQuantizer().set_global(qconfig))"]
                                if ctx.config.keep_integer_scalars else
                                ["prepared = prepare_qat_pt2e(ep.module(), XNNPACKQuantizer().set_global(qconfig))"])])


def bare_prepare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    """``prepare_qat_pt2e`` on the float export (the trace stage's bare call); quantviz's passes are not bare."""
    state["qat_model"] = fake_quantized(state["ep"], config, own_passes=False)


def _trained_qparams(fake_quantize: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    return fake_quantize.scale.detach().clone(), fake_quantize.zero_point.detach().clone()


def use_training_qparams(model: torch.fx.GraphModule) -> int:
    """Make each fused fake quantizer of ``model`` answer ``calculate_qparams`` (what ``convert_pt2e`` asks) with the
    scale and zero point its kernel trained with, not its observer's (``--qat-training-qparams``); how many."""
    import functools

    changed = 0
    for module in model.modules():
        if type(module).__name__ == "FusedMovingAvgObsFakeQuantize":
            module.calculate_qparams = functools.partial(_trained_qparams, module)
            changed += 1
    return changed


TRAINING_QPARAMS_CALLS = [
    "for m in prepared.modules():  # convert with the qparams the fake quantizers trained with (pytorch/ao#4824)",
    "    if isinstance(m, FusedMovingAvgObsFakeQuantize):",
    "        m.calculate_qparams = lambda m=m: (m.scale.detach().clone(), m.zero_point.detach().clone())"]


def converted(prepared: torch.fx.GraphModule, training_qparams: bool = False) -> torch.fx.GraphModule:
    """``move_exported_model_to_eval(prepared); convert_pt2e(prepared)`` (on a copy); with ``training_qparams``, the
    fake quantizers' trained qparams (``use_training_qparams``) rather than their observers'."""
    import copy

    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    model = copy.deepcopy(prepared)
    move_exported_model_to_eval(model)
    if training_qparams:
        use_training_qparams(model)
    return convert_pt2e(model)


def convert(ctx: StageContext) -> StageOutput:
    prepared = ctx.previous().model
    own = ctx.config.qat_training_qparams
    reference = converted(prepared, own)
    # each fake quantizer's scale and zero point at the end of training against the q/dq arguments convert wrote
    qparams = compare_pt2e(prepared, reference)
    notes = qparams.notes()
    if own:
        notes.insert(0, "convert_pt2e took each fake quantizer's trained scale and zero point "
                        "(--qat-training-qparams), not its observer's calculate_qparams")
    elif any(c.note.startswith("known cause") for c in qparams.mismatched()):
        notes.append("  --qat-training-qparams converts with the qparams the fake quantizers trained with")
    return StageOutput(reference, notes=notes, metrics=qparams.metrics(), diagnostics=Diagnostics(qat_qparams=qparams),
                       calls=["move_exported_model_to_eval(prepared)", *(TRAINING_QPARAMS_CALLS if own else []),
                              "reference = convert_pt2e(prepared)"])


def bare_convert(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    """``move_exported_model_to_eval``, ``convert_pt2e``: the reference model."""
    state["reference"] = converted(state["qat_model"], config.qat_training_qparams)


PREPARE = Stage("prepare_qat_pt2e", prepare, "prepare_qat_pt2e with XNNPACKQuantizer's QAT config",
                "The exported graph gets fake quantizers (not observers) around each quantizable op, so training "
                "sees the rounding.", reads=("per_channel", "backend", "keep_integer_scalars"),
                remedy=Remedy("try --flow qat", ({"flow": "qat"},)), bare=bare_prepare)
CONVERT = Stage("convert_qat_pt2e", convert, "move_exported_model_to_eval, convert_pt2e: the reference model",
                "The fine-tuned graph goes to eval mode and convert_pt2e turns its fake quantizers into "
                "quantize/dequantize pairs with the ranges they learned.",
                reads=("per_channel", "qat_training_qparams"),
                remedy=Remedy("try --flow pt2e (post-training)", ({"flow": "pt2e"},)), bare=bare_convert)
