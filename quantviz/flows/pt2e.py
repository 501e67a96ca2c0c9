"""pt2e: ``torch.export`` of the float model, ``prepare_pt2e`` with the backend's quantizer, calibration,
``convert_pt2e`` (reference q/dq), then ``torch.export`` again and lowering."""
from quantviz.flows.base import Flow
from quantviz.stages import calibrate, capture, convert, delegate, edge, emit, fuse, prepare, run, trace

FLOW = Flow(
    "pt2e", "torch.export, prepare_pt2e + the backend's quantizer, calibrate, convert_pt2e, export, lower",
    slots=(trace.STAGE, prepare.STAGE, calibrate.STAGE, convert.STAGE, capture.STAGE, edge.STAGE, delegate.STAGE,
           fuse.STAGE, emit.STAGE, run.STAGE),
    roles={"float_graph": "trace", "reference": "convert", "lowered": "fuse", "program": "emit"})
