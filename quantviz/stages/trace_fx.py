"""trace (fx): ``torch.fx.symbolic_trace`` semantics, with the skipped modules kept as leaves.

Every place tracing cannot follow is found in one run (``quantviz.untraceable``): without ``skip_untraceable`` the
stage fails listing them all; with it, helper functions become leaf calls and untraceable modules are skipped (the
prepare stage does the same). A user's script has no bare call for it: ``prepare_fx`` traces the model itself.
"""
from __future__ import annotations

from quantviz.stages.base import Diagnostics, Stage, StageContext, StageOutput
from quantviz.stages.trace import (DESCRIPTION, EXPLANATION, REMEDY, attach, check_float_model, refuse_structured,
                                   skipped_weight_share, untraceable_calls, untraceable_error, untraceable_notes)
from quantviz.untraceable import find_untraceable


def run(ctx: StageContext) -> StageOutput:
    refuse_structured(ctx.spec, "trace", "the fx flow: prepare_fx traces forward symbolically (torch.fx) on "
                                         "positional example inputs of fixed shapes")
    check_float_model(ctx)
    skip = ctx.config.skip_modules
    found = find_untraceable(ctx.spec.model, skip)
    if not found.sites:
        call = "gm = torch.fx.symbolic_trace(model)" if not skip else \
            f"# {', '.join(skip)} kept as leaf module(s)\ngm = SkippingTracer({tuple(skip)!r}).trace(model)"
        return StageOutput(attach(found), calls=[call])
    if not found.fixable or not ctx.config.skip_untraceable:
        skipped = tuple(s.module for s in found.skipped_sites)
        raise untraceable_error(found, skipped_weight_share(ctx.spec.model, skipped))
    return StageOutput(attach(found), calls=untraceable_calls(found), notes=untraceable_notes(found),
                       metrics={"wrapped_functions": len(found.wrapped), "skipped_modules": len(found.skipped_sites)},
                       diagnostics=Diagnostics(untraceable=list(found.sites)))


# symbolic tracing keeps skipped modules as leaves, so a layer kept float re-runs from here
STAGE = Stage("trace", run, DESCRIPTION, EXPLANATION, reads=("flow", "skip_untraceable", "skip_modules"),
              remedy=REMEDY, variant="trace_fx")
