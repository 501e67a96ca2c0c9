"""prepare: insert observers where the backend can run quantized ops.

fx flow: ``prepare_fx`` with a ``QConfigMapping`` and ExecuTorch's ``BackendConfig``; the helpers and modules the
trace stage made leaves (``skip_untraceable``) are leaves here too.
pt2e flow: ``prepare_pt2e`` with ``XNNPACKQuantizer`` (int8, symmetric weights).
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.ao.quantization import QConfig, QConfigMapping, default_dynamic_qconfig
from torch.ao.quantization.qconfig import float_qparams_weight_only_qconfig
from torch.ao.quantization.backend_config.executorch import get_executorch_backend_config
from torch.ao.quantization.fx.custom_config import PrepareCustomConfig
from torch.ao.quantization.observer import HistogramObserver, default_per_channel_weight_observer
from torch.ao.quantization.qconfig_mapping import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import prepare_fx

from quantviz.config import PipelineConfig
from quantviz.quantizers.skip_modules import SkipModulesQuantizer
from quantviz.stages.base import StageContext, StageOutput
from quantviz.untraceable import FINDINGS_ATTR, Untraceable, leaf_functions, unmark_leaf_calls

DESCRIPTION = "insert observers (fx: prepare_fx + ExecuTorch BackendConfig; pt2e: prepare_pt2e + XNNPACKQuantizer)"
EXPLANATION = (
    'Inserts observers at every point the backend can run a quantized op. Which ops, dtypes and ranges '
    "come from the QConfigMapping and ExecuTorch's BackendConfig (fx) or from XNNPACKQuantizer's "
    'annotations (pt2e).'
)


def fx_qconfig_mapping(config: PipelineConfig) -> QConfigMapping:
    """The QConfigMapping for the fx flow: qnnpack defaults (uint8 activations, int8 weights)."""
    if config.mode == "dynamic":
        mapping = QConfigMapping().set_object_type(nn.Linear, default_dynamic_qconfig) \
            .set_object_type(torch.nn.functional.linear, default_dynamic_qconfig)
    else:
        mapping = get_default_qconfig_mapping("qnnpack")
        if config.per_channel:
            qconfig = QConfig(activation=HistogramObserver.with_args(reduce_range=False),
                              weight=default_per_channel_weight_observer)
            for op in (nn.Conv2d, nn.Linear, torch.nn.functional.conv2d, torch.nn.functional.linear):
                mapping.set_object_type(op, qconfig)
    mapping.set_object_type(nn.Embedding, float_qparams_weight_only_qconfig)
    for name in config.skip_modules:
        mapping.set_module_name(name, None)
    return mapping


def xnnpack_quantizer(config: PipelineConfig):  # -> Quantizer
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(
        is_per_channel=config.per_channel, is_dynamic=config.mode == "dynamic"))
    if config.skip_modules:
        quantizer = SkipModulesQuantizer(quantizer, config.skip_modules)
    return quantizer


def run(ctx: StageContext) -> StageOutput:
    config = ctx.config
    if config.flow == "pt2e":
        from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

        ep = ctx.artifact("trace")
        observed = prepare_pt2e(ep.module(), xnnpack_quantizer(config))
        calls = [
            "from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, "
            "get_symmetric_quantization_config",
            "from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e",
            f"quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config("
            f"is_per_channel={config.per_channel}, is_dynamic={config.mode == 'dynamic'}))",
            *([f"quantizer = SkipModulesQuantizer(quantizer, skip={tuple(config.skip_modules)!r})  "
               "# from quantviz.quantizers.skip_modules"] if config.skip_modules else []),
            "observed = prepare_pt2e(ep.module(), quantizer)",
        ]
        return StageOutput(observed, calls=calls)

    found = findings_of(ctx.artifact("trace"))  # what the trace stage wrapped and skipped (skip_untraceable)
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
        "from quantviz.stages.prepare import fx_qconfig_mapping  # qnnpack defaults, see its source",
        f"qconfig_mapping = fx_qconfig_mapping(PipelineConfig(mode={config.mode!r}, per_channel={config.per_channel}"
        + (f", skip_modules={skip!r}))" if skip else "))"),
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


def findings_of(traced: object) -> Untraceable | None:
    """The trace stage's :class:`~quantviz.untraceable.Untraceable` findings, attached to its GraphModule."""
    return getattr(traced, FINDINGS_ATTR, None)
