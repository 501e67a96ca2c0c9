"""torchao: torchao's ``quantize_`` source transform, the path of language models. ``torch.export`` of the
quantized model (torchao's affine q/dq ops around the int weights), then lowering to XNNPACK.

Its rail shows the float export it starts from (trace), quantize_, and no prepare, calibrate or convert: those
are the observer flows' steps, and they are shown as not part of this one, with the reason.
"""
from quantviz.flows.base import Absent, Flow
from quantviz.stages import capture, delegate, edge, emit, fuse, quantize, run, trace

FLOW = Flow(
    "torchao", "torchao quantize_ (8da4w, 8da8w, int8 weight-only), torch.export, to_edge_transform_and_lower",
    slots=(trace.STAGE, quantize.STAGE,
           Absent("prepare", "quantize_ inserts no observers: it rewrites the weights themselves"),
           Absent("calibrate", "the schemes XNNPACK lowers quantize activations at run time (8da4w, 8da8w: int8 per "
                               "token) or not at all (weight-only), so there is nothing to calibrate"),
           Absent("convert", "quantize_ already made the quantized model; there is no observed model to convert"),
           capture.STAGE, edge.STAGE, delegate.STAGE, fuse.STAGE, emit.STAGE, run.STAGE),
    roles={"float_graph": "trace", "reference": "capture", "lowered": "fuse", "program": "emit"})
