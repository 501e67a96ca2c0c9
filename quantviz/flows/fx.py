"""fx: the seed's flow. ``prepare_fx`` with a QConfigMapping and ExecuTorch's BackendConfig (uint8 activations,
int8 weights), calibration, ``_convert_to_reference_decomposed_fx``, then ``torch.export`` and lowering.

Recovery candidates (``quantviz recover``): the QConfigMapping is the flow's own, so the flow declares them all: a
weighted layer kept float (``set_module_name(name, None)``), per-channel weights, another activation observer,
every calibration batch the factory gives.
"""
from torch.fx import GraphModule

from quantviz.config import PipelineConfig
from quantviz.measure.readable import Precision
from quantviz.model_spec import ModelSpec
from quantviz.untraceable import find_untraceable
from quantviz.flows.base import Flow
from quantviz.candidates import (Candidate, Scope, keep_float, more_calibration, other_observers,
                                         per_channel)
from quantviz.stages import (calibrate_fx, capture_fx, convert_fx, delegate_fx, edge_fx, emit, fuse, prepare_fx,
                             run_fx, trace_fx)


def float_graph(spec: ModelSpec, config: PipelineConfig) -> GraphModule:
    """The float model symbolically traced, skipped modules kept as leaves (what the trace stage makes)."""
    return find_untraceable(spec.model, tuple(config.skip_modules)).graph_module


def calibrates(config: PipelineConfig) -> bool:
    """The observers see the calibration batches in static mode (dynamic mode computes activation scales at run
    time)."""
    return config.mode == "static"


def precision(config: PipelineConfig) -> Precision:
    """uint8 activations and int8 weights: ExecuTorch's BackendConfig, whatever ``activation_bits`` says."""
    return Precision("uint8", 8)


def recovery(config: PipelineConfig, scope: Scope) -> list[Candidate]:
    """``recovery(PipelineConfig(), Scope(layers=("conv1",)))`` -> keep conv1 float, per channel, minmax,
    moving_average (histogram is the default)."""
    return [*(keep_float(layer) for layer in scope.layers if layer not in config.skip_modules),
            *([per_channel()] if not config.per_channel else []), *other_observers(config, "histogram"),
            *more_calibration(config, scope)]


FLOW = Flow(
    "fx", "prepare_fx + ExecuTorch BackendConfig, calibrate, convert to reference q/dq, export, lower",
    slots=(trace_fx.STAGE, prepare_fx.STAGE, calibrate_fx.STAGE, convert_fx.STAGE, capture_fx.STAGE, edge_fx.STAGE,
           delegate_fx.STAGE, fuse.STAGE, emit.STAGE, run_fx.STAGE),
    roles={"float_graph": "trace", "reference": "convert", "lowered": "fuse", "program": "emit", "delegated": "delegate",
           "runtime": "run"},
    recovery=recovery, rank=0, float_graph=float_graph, calibration=calibrates,
    precision_of=precision)
