"""prepare (pt2e): ``prepare_pt2e`` with the backend's quantizer (XNNPACKQuantizer, TOSAQuantizer, ...), on the
module of the float program the trace stage exported; ``config.skip_modules`` stay unannotated."""
from __future__ import annotations

from quantviz.backends import backend_name, backend_of
from quantviz.config import PipelineConfig
from quantviz.model_spec import ModelSpec
from quantviz.passes.keep_integer_scalars import keep_integer_scalars
from quantviz.quantizers.pattern_cache import cached_pattern_graphs
from quantviz.stages.base import Stage, StageContext, StageOutput
from quantviz.stages.prepare import DESCRIPTION, EXPLANATION, pt2e_quantizer, pt2e_quantizer_calls, remedy
from quantviz.stages.trace import check_skip_names


def run(ctx: StageContext) -> StageOutput:
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    config = ctx.config
    ep = ctx.previous()
    check_skip_names(ctx.spec.model, config.skip_modules, "prepare")  # trace does not read them under pt2e
    gm = ep.module(check_guards=config.check_guards)
    module = "ep.module()" if config.check_guards else \
        "ep.module(check_guards=False)  # no _guards_fn call_module (Arm's passes cannot run it)"
    calls = ["from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e",
             *pt2e_quantizer_calls(config, ctx.backend), f"gm = {module}"]
    notes = []
    if config.keep_integer_scalars:
        gm, kept = keep_integer_scalars(gm)
        calls += ["from quantviz.passes.keep_integer_scalars import keep_integer_scalars",
                  "gm, _ = keep_integer_scalars(gm)  # integer add/mul keep integer scalars through the quantizer"]
        notes.append(f"keep_integer_scalars: {kept} integer add/mul scalar(s) made integer constants, so the "
                     "quantizer's _convert_scalars_to_attrs does not turn them float")
    with cached_pattern_graphs():  # XNNPACKQuantizer's conv-bn patterns exported once per process
        observed = prepare_pt2e(gm, pt2e_quantizer(config, ctx.backend))
    calls.append("observed = prepare_pt2e(gm, quantizer)")
    return StageOutput(observed, calls=calls, notes=notes)


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    """``prepare_pt2e(ep.module(), quantizer)``; quantviz's module skipping is not a bare call."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    state["observed"] = prepare_pt2e(state["ep"].module(check_guards=config.check_guards),
                                     backend_of(config).quantizer(config.with_changes(skip_modules=())))


def key(config: PipelineConfig) -> tuple:
    """prepare depends on the backend's quantizer, not the backend's name (two backends may share one)."""
    quantizer = backend_of(config).quantizer_key or backend_name(config)
    return (config.mode, config.per_channel, config.observer, config.activation_bits, config.check_guards,
            config.keep_integer_scalars, quantizer, tuple(config.skip_modules))


STAGE = Stage(
    "prepare", run, DESCRIPTION, EXPLANATION,
    reads=("mode", "per_channel", "backend", "observer", "activation_bits", "check_guards", "keep_integer_scalars",
           "skip_modules"),
    key=key, remedy=remedy(other_flow="fx"), bare=bare, variant="prepare_pt2e")
