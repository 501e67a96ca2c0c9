"""convert (fx): ``_convert_to_reference_decomposed_fx`` with ExecuTorch's BackendConfig."""
from __future__ import annotations

from quantviz.config import PipelineConfig
from quantviz.model_spec import ModelSpec
from quantviz.stages.base import Stage, StageContext, StageOutput
from quantviz.stages.convert import DESCRIPTION, EXPLANATION, remedy


def run(ctx: StageContext) -> StageOutput:
    from torch.ao.quantization.backend_config.executorch import get_executorch_backend_config
    from torch.ao.quantization.quantize_fx import _convert_to_reference_decomposed_fx

    reference = _convert_to_reference_decomposed_fx(ctx.previous(), backend_config=get_executorch_backend_config())
    return StageOutput(reference, calls=[
        "from torch.ao.quantization.quantize_fx import _convert_to_reference_decomposed_fx",
        "from torch.ao.quantization.backend_config.executorch import get_executorch_backend_config",
        "reference = _convert_to_reference_decomposed_fx(observed, backend_config=get_executorch_backend_config())"])


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    from torch.ao.quantization.backend_config.executorch import get_executorch_backend_config
    from torch.ao.quantization.quantize_fx import _convert_to_reference_decomposed_fx

    state["reference"] = _convert_to_reference_decomposed_fx(state["observed"],
                                                             backend_config=get_executorch_backend_config())


STAGE = Stage("convert", run, DESCRIPTION, EXPLANATION, reads=(),
              mutates_input=True,  # convert rewrites the observed module
              remedy=remedy(other_flow="pt2e"), bare=bare, variant="convert_fx")
