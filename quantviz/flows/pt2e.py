"""pt2e: ``torch.export`` of the float model, ``prepare_pt2e`` with the backend's quantizer, calibration,
``convert_pt2e`` (reference q/dq), then ``torch.export`` again and lowering.

Recovery candidates: the flow's own are a weighted layer kept float (left unannotated) and every calibration
batch the factory gives; the quantizer's options (per-channel weights, observers, int16 activations) are the
backend's to declare (``Backend.recovery``).
"""
from quantviz.config import PipelineConfig
from quantviz.flows.base import Flow
from quantviz.candidates import Candidate, Scope, keep_float, more_calibration
from quantviz.stages import (calibrate_pt2e, capture, convert_pt2e, delegate, edge, emit, fuse, prepare_pt2e, run,
                             trace_export)


def calibrates(config: PipelineConfig) -> bool:
    """The observers see the calibration batches in static mode (dynamic mode computes activation scales at run
    time)."""
    return config.mode == "static"


def recovery(config: PipelineConfig, scope: Scope) -> list[Candidate]:
    """``recovery(PipelineConfig(flow="pt2e"), Scope(layers=("conv1", "fc")))`` -> keep conv1, fc float."""
    return [*(keep_float(layer) for layer in scope.layers if layer not in config.skip_modules),
            *more_calibration(config, scope)]


FLOW = Flow(
    "pt2e", "torch.export, prepare_pt2e + the backend's quantizer, calibrate, convert_pt2e, export, lower",
    slots=(trace_export.STAGE, prepare_pt2e.STAGE, calibrate_pt2e.STAGE, convert_pt2e.STAGE, capture.STAGE,
           edge.STAGE, delegate.STAGE, fuse.STAGE, emit.STAGE, run.STAGE),
    roles={"float_graph": "trace", "reference": "convert", "lowered": "fuse", "program": "emit", "delegated": "delegate",
           "runtime": "run"},
    recovery=recovery, rank=1, warm_until="prepare", backend_recovery=True, calibration=calibrates,
    # the app opens here, with XNNPACK: a newcomer sees delegation and fusion at once (the CLI's default stays fx)
    app_start={"backend": "xnnpack"})
