"""torchao: torchao's ``quantize_`` source transform, the path of language models. ``torch.export`` of the
quantized model (torchao's affine q/dq ops around the int weights), then lowering to XNNPACK.

Its rail shows the float export it starts from (trace), quantize_, and no prepare, calibrate or convert: those
are the observer flows' steps, and they are shown as not part of this one, with the reason.

Recovery candidates (``quantviz recover``): per linear layer, int8 weights instead of int4 (``int8_modules``) or
the layer kept float (left out of ``quantize_``'s ``filter_fn``); int8 weights everywhere (8da8w); smaller int4
groups, where every linear's width divides and the backend takes them (XNNPACK: multiples of 32).
"""
import dataclasses

from quantviz.backends import Backend, backend_of
from quantviz.config import PipelineConfig
from quantviz.flows.base import Absent, Flow, default_precision
from quantviz.measure.readable import Precision
from quantviz.candidates import Candidate, Scope, group_size, int8_everywhere, int8_weights, keep_float
from quantviz.stages import capture, delegate, edge, emit, fuse_torchao, quantize, run, trace_export

def smaller_groups(config: PipelineConfig, scope: Scope) -> list[int]:
    """Group sizes below ``config.group_size`` (halving) that divide every linear's input width, multiples of what
    the backend takes (``Backend.int4_group_step``; XNNPACK: 32): ``smaller_groups(PipelineConfig(flow="torchao", group_size=128), Scope(...))`` ->
    [64, 32]."""
    step = backend_of(config).int4_group_step
    sizes, g = [], config.group_size // 2
    while config.group_size and g >= step and g % step == 0:
        if all(width % g == 0 for width in scope.linear_inputs):
            sizes.append(g)
        g //= 2
    return sizes


def recovery(config: PipelineConfig, scope: Scope) -> list[Candidate]:
    """The torchao flow's candidates under ``config`` for the model's linear layers (``scope.linears``)."""
    linears = [name for name in scope.linears if name not in config.skip_modules]
    int4 = config.scheme == "8da4w"
    return [*(int8_weights(name) for name in linears if int4 and name not in config.int8_modules),
            *(keep_float(name) for name in linears),
            *([int8_everywhere()] if int4 else []),
            *(group_size(g) for g in (smaller_groups(config, scope) if int4 else []))]


def precision(config: PipelineConfig) -> Precision:
    """int8 activations (per token, at run time) with 4-bit weights under 8da4w, 8-bit otherwise."""
    return Precision(default_precision(config).activations, 4 if "4w" in config.scheme else 8)


def backend_refusal(backend: Backend) -> str:
    """Why the torchao flow cannot lower to ``backend`` ("" when it can)."""
    if backend.takes_xnnpack:
        return ""
    return (f"flow='torchao' lowers to XNNPACK (the configurations quantize_ makes for it); backend "
            f"{backend.name!r} takes --flow pt2e with its own quantizer")


FLOW = Flow(
    "torchao", "torchao quantize_ (8da4w, 8da8w, int8 weight-only), torch.export, to_edge_transform_and_lower",
    # the float export is shown, not a bare call: a user's script runs quantize_ on the eager model
    slots=(dataclasses.replace(trace_export.STAGE, bare=None), quantize.STAGE,
           Absent("prepare", "quantize_ inserts no observers: it rewrites the weights themselves"),
           Absent("calibrate", "the schemes XNNPACK lowers quantize activations at run time (8da4w, 8da8w: int8 per "
                               "token) or not at all (weight-only), so there is nothing to calibrate"),
           Absent("convert", "quantize_ already made the quantized model; there is no observed model to convert"),
           capture.STAGE, edge.STAGE, delegate.STAGE, fuse_torchao.STAGE, emit.STAGE, run.STAGE),
    roles={"float_graph": "trace", "reference": "capture", "lowered": "fuse", "program": "emit", "delegated": "delegate",
           "runtime": "run"},
    default_backend="xnnpack",  # the configurations quantize_ makes are XNNPACK's
    recovery=recovery, rank=2, backend_refusal=backend_refusal, precision_of=precision,
    exports_methods=True)  # quantize_ changes the eager model: every method of ModelSpec.methods is quantized
