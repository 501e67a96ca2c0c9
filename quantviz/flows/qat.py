"""qat: torchao quantization-aware training, then the torchao flow's lowering: prepare_qat (fake quantizers),
train (a short fine-tune on the calibration data, the float model's outputs as targets), convert_qat (quantize_
with the same config as ``--flow torchao``), torch.export, to_edge_transform_and_lower to XNNPACK, the runtime.
``bench/qat.py`` runs it beside ``--flow torchao`` (PTQ) at the same configuration::

    pipe = Pipeline(load_model("sample:text_lm"), PipelineConfig(flow="qat", qat_steps=40)).run()
    pipe.results["train"].artifact.losses      # the loss curve
"""
import dataclasses

from quantviz.flows import torchao
from quantviz.flows.base import Absent, Flow
from quantviz.stages import capture, delegate, edge, emit, fuse_torchao, qat, run, trace_export

FLOW = Flow(
    "qat", "torchao QAT (QATConfig with IntxFakeQuantizeConfig): prepare, fine-tune, convert, then as --flow torchao",
    slots=(dataclasses.replace(trace_export.STAGE, bare=None), qat.PREPARE, qat.TRAIN, qat.CONVERT,
           Absent("calibrate", "activations are quantized per token at run time (8da4w, 8da8w): nothing to calibrate"),
           capture.STAGE, edge.STAGE, delegate.STAGE, fuse_torchao.STAGE, emit.STAGE, run.STAGE),
    roles={"float_graph": "trace", "reference": "capture", "lowered": "fuse", "program": "emit", "delegated": "delegate",
           "runtime": "run"},
    default_backend=torchao.FLOW.default_backend, rank=5, backend_refusal=torchao.backend_refusal)
