"""qat_pt2e: PT2E quantization-aware training with XNNPACKQuantizer's QAT config: torch.export, prepare_qat_pt2e,
the qat flow's fine-tune (train), convert_pt2e, then the pt2e flow's lowering::

    pipe = Pipeline(load_model("sample:text_lm"), PipelineConfig(flow="qat_pt2e", backend="xnnpack")).run()
"""
from quantviz.flows.base import Absent, Flow
from quantviz.stages import capture, delegate, edge, emit, fuse, qat, qat_pt2e, run, trace_export

FLOW = Flow(
    "qat_pt2e", "torch.export, prepare_qat_pt2e (XNNPACKQuantizer, is_qat), fine-tune, convert_pt2e, export, lower",
    slots=(trace_export.STAGE, qat_pt2e.PREPARE, qat.TRAIN,
           Absent("calibrate", "the fake quantizers learn their ranges while training"),
           qat_pt2e.CONVERT, capture.STAGE, edge.STAGE, delegate.STAGE, fuse.STAGE, emit.STAGE, run.STAGE),
    roles={"float_graph": "trace", "reference": "convert_qat_pt2e", "lowered": "fuse", "program": "emit",
           "delegated": "delegate", "runtime": "run"}, rank=6)
