"""fx: the seed's flow. ``prepare_fx`` with a QConfigMapping and ExecuTorch's BackendConfig (uint8 activations,
int8 weights), calibration, ``_convert_to_reference_decomposed_fx``, then ``torch.export`` and lowering."""
from quantviz.flows.base import Flow
from quantviz.stages import calibrate, capture, convert, delegate, edge, emit, fuse, prepare, run, trace

FLOW = Flow(
    "fx", "prepare_fx + ExecuTorch BackendConfig, calibrate, convert to reference q/dq, export, lower",
    slots=(trace.STAGE, prepare.STAGE, calibrate.STAGE, convert.STAGE, capture.STAGE, edge.STAGE, delegate.STAGE,
           fuse.STAGE, emit.STAGE, run.STAGE),
    roles={"float_graph": "trace", "reference": "convert", "lowered": "fuse", "program": "emit"})
