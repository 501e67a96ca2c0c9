"""prepare (fx): ``prepare_fx`` with a ``QConfigMapping`` and ExecuTorch's ``BackendConfig`` (uint8 activations,
int8 weights); the helpers and modules the trace stage made leaves (``skip_untraceable``) are leaves here too."""
from __future__ import annotations

import copy

from torch.ao.quantization.backend_config.executorch import get_executorch_backend_config
from torch.ao.quantization.fx.custom_config import PrepareCustomConfig
from torch.ao.quantization.quantize_fx import prepare_fx

from quantviz.config import PipelineConfig
from quantviz.model_spec import ModelSpec
from quantviz.quantizers.fx_qconfig import fx_qconfig_mapping
from quantviz.stages.base import Stage, StageContext, StageOutput
from quantviz.stages.prepare import DESCRIPTION, EXPLANATION, findings_of, remedy
from quantviz.untraceable import leaf_functions, unmark_leaf_calls


def run(ctx: StageContext) -> StageOutput:
    config = ctx.config
    found = findings_of(ctx.previous())  # what the trace stage wrapped and skipped (skip_untraceable)
    skip = tuple(dict.fromkeys(config.skip_modules + (found.skipped if found else ())))
    entries = found.leaf_entries if found else ()
    qconfig_config = config.with_changes(skip_modules=skip)  # qconfig None for every skipped module
    custom = PrepareCustomConfig().set_non_traceable_module_names(list(skip))
    model = copy.deepcopy(ctx.spec.model).eval()  # the float model stays untouched for numerics
    with leaf_functions(entries):  # prepare_fx traces the model again: the same helpers stay leaf calls
        observed = prepare_fx(model, fx_qconfig_mapping(qconfig_config), ctx.spec.example_inputs,
                              prepare_custom_config=custom, backend_config=get_executorch_backend_config())
    unmark_leaf_calls(observed, entries)  # convert_fx recompiles it: do not let that register them for good
    prepare_fx_call = ("observed = prepare_fx(copy.deepcopy(model), qconfig_mapping, example_inputs, "
                       "prepare_custom_config=custom, backend_config=get_executorch_backend_config())")
    calls = [
        "from torch.ao.quantization.quantize_fx import prepare_fx",
        "from torch.ao.quantization.backend_config.executorch import get_executorch_backend_config",
        "from torch.ao.quantization.fx.custom_config import PrepareCustomConfig",
        "from quantviz.quantizers.fx_qconfig import fx_qconfig_mapping  # qnnpack defaults, see its source",
        f"qconfig_mapping = fx_qconfig_mapping(PipelineConfig(mode={config.mode!r}, per_channel={config.per_channel}"
        + (f", observer={config.observer!r}))" if config.observer != "default" else "))"),
        *(f"qconfig_mapping.set_module_name({name!r}, None)  # {name} stays float" for name in skip),
        f"custom = PrepareCustomConfig().set_non_traceable_module_names({list(skip)!r})",
        *([f"with leaf_functions(leaf_entries):  # {', '.join(s.name for s in found.wrapped)} stay leaf calls "
           "(from the trace stage)", f"    {prepare_fx_call}"] if entries else [prepare_fx_call]),
    ]
    notes = []
    if found and found.sites:
        notes.append("prepare_fx traced with " + "; ".join(
            ([f"helper(s) {', '.join(s.name for s in found.wrapped)} kept as leaf calls"] if found.wrapped else [])
            + ([f"module(s) {', '.join(s.module for s in found.skipped_sites)} skipped (float, qconfig None)"]
               if found.skipped_sites else [])))
    return StageOutput(observed, calls=calls, notes=notes)


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    """``prepare_fx(model, mapping, example_inputs, backend_config=...)``; quantviz's module skipping is not a bare
    call."""
    state["observed"] = prepare_fx(copy.deepcopy(spec.model).eval(),
                                   fx_qconfig_mapping(config.with_changes(skip_modules=())),
                                   spec.example_inputs, backend_config=get_executorch_backend_config())


STAGE = Stage(
    "prepare", run, DESCRIPTION, EXPLANATION, reads=("mode", "per_channel", "observer", "skip_modules"),
    remedy=remedy(other_flow="pt2e"), bare=bare, variant="prepare_fx")
