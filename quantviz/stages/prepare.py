"""prepare: insert observers where the backend can run quantized ops.

fx flow: ``prepare_fx`` with a ``QConfigMapping`` and ExecuTorch's ``BackendConfig``; the helpers and modules the
trace stage made leaves (``skip_untraceable``) are leaves here too.
pt2e flow: ``prepare_pt2e`` with ``XNNPACKQuantizer`` (int8, symmetric weights).
"""
from __future__ import annotations

import copy

from torch.ao.quantization.backend_config.executorch import get_executorch_backend_config
from torch.ao.quantization.fx.custom_config import PrepareCustomConfig
from torch.ao.quantization.quantize_fx import prepare_fx

from quantviz.backends import backend_of
from quantviz.config import PipelineConfig
from quantviz.model_spec import ModelSpec
from quantviz.passes.keep_integer_scalars import keep_integer_scalars
from quantviz.quantizers.fx_qconfig import fx_qconfig_mapping
from quantviz.quantizers.pattern_cache import cached_pattern_graphs
from quantviz.quantizers.skip_modules import SkipModulesQuantizer
from quantviz.stages.base import OTHER_FLOW, Remedy, Stage, StageContext, StageOutput
from quantviz.stages.trace import check_skip_names
from quantviz.untraceable import FINDINGS_ATTR, Untraceable, leaf_functions, unmark_leaf_calls

DESCRIPTION = "insert observers (fx: prepare_fx + ExecuTorch BackendConfig; pt2e: prepare_pt2e + the backend's quantizer)"
EXPLANATION = (
    'Inserts observers at every point the backend can run a quantized op. Which ops, dtypes and ranges '
    "come from the QConfigMapping and ExecuTorch's BackendConfig (fx) or from the backend's quantizer's "
    'annotations (pt2e: XNNPACKQuantizer, TOSAQuantizer, ...).'
)


def pt2e_quantizer(config: PipelineConfig):  # -> Quantizer
    """The backend's quantizer for ``config``, with ``config.skip_modules`` left float."""
    quantizer = backend_of(config).quantizer(config)
    if config.skip_modules:
        quantizer = SkipModulesQuantizer(quantizer, config.skip_modules)
    return quantizer


def pt2e_quantizer_calls(config: PipelineConfig) -> list[str]:
    """The quantizer as a user's script builds it; skipped modules through quantviz's wrapper, because
    XNNPACKQuantizer refuses ``set_module_name(name, None)``."""
    skip = [f"from quantviz.quantizers.skip_modules import SkipModulesQuantizer  # leaves these modules "
            "unannotated (XNNPACKQuantizer refuses set_module_name(name, None))",
            f"quantizer = SkipModulesQuantizer(quantizer, skip={tuple(config.skip_modules)!r})"]
    return [*backend_of(config).quantizer_calls(config), *(skip if config.skip_modules else [])]


def run(ctx: StageContext) -> StageOutput:
    config = ctx.config
    if config.flow == "pt2e":
        from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

        ep = ctx.previous()
        check_skip_names(ctx.spec.model, config.skip_modules, "prepare")  # trace does not read them under pt2e
        gm = ep.module(check_guards=config.check_guards)
        module = "ep.module()" if config.check_guards else \
            "ep.module(check_guards=False)  # no _guards_fn call_module (Arm's passes cannot run it)"
        calls = ["from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e", *pt2e_quantizer_calls(config),
                 f"gm = {module}"]
        notes = []
        if config.keep_integer_scalars:
            gm, kept = keep_integer_scalars(gm)
            calls += ["from quantviz.passes.keep_integer_scalars import keep_integer_scalars",
                      "gm, _ = keep_integer_scalars(gm)  # integer add/mul keep integer scalars through the quantizer"]
            notes.append(f"keep_integer_scalars: {kept} integer add/mul scalar(s) made integer constants, so the "
                         "quantizer's _convert_scalars_to_attrs does not turn them float")
        with cached_pattern_graphs():  # XNNPACKQuantizer's conv-bn patterns exported once per process
            observed = prepare_pt2e(gm, pt2e_quantizer(config))
        calls.append("observed = prepare_pt2e(gm, quantizer)")
        return StageOutput(observed, calls=calls, notes=notes)

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


def findings_of(traced: object) -> Untraceable | None:
    """The trace stage's :class:`~quantviz.untraceable.Untraceable` findings, attached to its GraphModule."""
    return getattr(traced, FINDINGS_ATTR, None)


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    """``prepare_pt2e(ep.module(), quantizer)`` or ``prepare_fx(model, mapping, ..., backend_config)``; quantviz's
    module skipping is not a bare call."""
    bare_config = config.with_changes(skip_modules=())
    if config.flow == "pt2e":
        from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

        state["observed"] = prepare_pt2e(state["ep"].module(check_guards=config.check_guards),
                                         backend_of(config).quantizer(bare_config))
        return
    state["observed"] = prepare_fx(copy.deepcopy(spec.model).eval(), fx_qconfig_mapping(bare_config),
                                   spec.example_inputs, backend_config=get_executorch_backend_config())


def key(config: PipelineConfig) -> tuple:
    """prepare depends on the mode, per channel, the modules left float, and (pt2e) the backend's quantizer, not
    the backend's name."""
    quantizer = backend_of(config).quantizer_key or config.target if config.flow == "pt2e" else None
    return (config.mode, config.per_channel, config.observer, config.activation_bits, config.check_guards,
            config.keep_integer_scalars, quantizer, tuple(config.skip_modules))


STAGE = Stage(
    "prepare", run, DESCRIPTION, EXPLANATION,
    reads=("mode", "per_channel", "backend", "observer", "activation_bits", "check_guards", "keep_integer_scalars",
           "skip_modules"),
    key=key,
    remedy=Remedy("try --flow pt2e or --flow fx, or skip the module named in the message with --skip-module",
                  ({"flow": OTHER_FLOW},)),
    bare=bare)
