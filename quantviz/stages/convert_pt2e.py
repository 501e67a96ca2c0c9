"""convert (pt2e): ``convert_pt2e`` with the backend's options (``Backend.convert_options``) when the backend's
partitioner takes the program (``convert_options``)."""
from __future__ import annotations

from typing import Any

from quantviz.backends import backend_of
from quantviz.config import PipelineConfig
from quantviz.lowering import partitioner_name
from quantviz.model_spec import ModelSpec
from quantviz.stages.base import Stage, StageContext, StageOutput
from quantviz.stages.convert import DESCRIPTION, EXPLANATION, remedy


def convert_options(config: PipelineConfig) -> dict[str, Any]:
    """``convert_pt2e``'s keyword arguments under ``config``: the backend's own (``Backend.convert_options``) when its
    partitioner lowers the program, none (``convert_pt2e``'s defaults) when nothing is delegated. OpenVINO's delegate
    needs its weights unfolded (``fold_quantize=False``); without it the portable kernels run them, and executorch
    1.5.1's ``quantize_per_channel`` kernel aborts on the float32 scales OpenVINOQuantizer gives per-channel weights
    (it takes float64 only), so ``--partitioner none`` folds them, as ``convert_pt2e`` does by default::

        convert_options(PipelineConfig(flow="pt2e", backend="openvino"))                      # {'fold_quantize': False}
        convert_options(PipelineConfig(flow="pt2e", backend="openvino", partitioner="none"))  # {}
    """
    return dict(backend_of(config).convert_options) if partitioner_name(config) not in ("none", "demo") else {}


def signature(config: PipelineConfig) -> tuple:
    """What the convert stage depends on beyond prepare's result: its keyword arguments."""
    return tuple(sorted(convert_options(config).items()))


def run(ctx: StageContext) -> StageOutput:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    options = convert_options(ctx.config)
    dropped = {k: v for k, v in ctx.backend.convert_options.items() if k not in options}
    extra = "".join(f", {k}={v!r}" for k, v in options.items())
    notes = [f"{ctx.backend.name}'s {', '.join(f'{k}={v!r}' for k, v in dropped.items())} is for its delegate, and "
             "nothing is delegated here: convert_pt2e's defaults (weights folded to int8 constants, which the "
             "portable kernels run)"] if dropped else []
    return StageOutput(convert_pt2e(ctx.previous(), **options), notes=notes, calls=[
        "from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e",
        f"reference = convert_pt2e(observed{extra})"])


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    state["reference"] = convert_pt2e(state["observed"], **convert_options(config))


STAGE = Stage("convert", run, DESCRIPTION, EXPLANATION, reads=(),
              # a backend with convert options (OpenVINO) applies them only when its partitioner delegates
              reads_when=lambda config: ("partitioner",) if backend_of(config).convert_options else (),
              mutates_input=True,  # convert rewrites the observed module
              remedy=remedy(other_flow="fx"), bare=bare, key=signature, variant="convert_pt2e")
