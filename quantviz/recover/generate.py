"""The candidates of one model under one config: its :class:`~quantviz.candidates.Scope` (weighted
layers, linear widths, calibration batches) and what its flow and its backend declare for it.

Example::

    scope = scope_of(load_model("sample:digits_cnn"))
    [c.id for c in candidates_for(PipelineConfig(flow="pt2e"), scope)]
    # ['keep_float:conv1', 'keep_float:conv2', 'keep_float:fc', 'per_channel', 'observer:minmax',
    #  'observer:moving_average']
"""
from __future__ import annotations

from quantviz.backends import backend_of
from quantviz.config import ConfigError, PipelineConfig
from quantviz.flows import FLOWS, check
from quantviz.model_spec import ModelSpec
from quantviz.candidates import Candidate, Scope, compose

def scope_of(spec: ModelSpec) -> Scope:
    """The model's weighted layers in model order (conv and linear modules, as ``numerics.sensitivity`` takes
    them), its linears' input widths, and the number of calibration batches its factory gives."""
    import torch

    weighted = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)
    modules = [(name, m) for name, m in spec.model.named_modules() if name and isinstance(m, weighted)]
    linears = [(name, m) for name, m in modules if isinstance(m, torch.nn.Linear)]
    return Scope(layers=tuple(name for name, _ in modules), linears=tuple(name for name, _ in linears),
                 linear_inputs=tuple(int(m.in_features) for _, m in linears),
                 calibration_batches=len(spec.calibration_batches or [spec.example_inputs]))


def declared(config: PipelineConfig, scope: Scope) -> list[Candidate]:
    """What the config's flow and backend declare, flow first (each ``recovery`` function; none when None)."""
    flow = FLOWS[config.flow]
    out = list(flow.recovery(config, scope)) if flow.recovery is not None else []
    if flow.recovery is None or not flow.backend_recovery:
        return out  # the backend's are its quantizer's options: only a flow that quantizes with it offers them
    try:
        backend = backend_of(config)
    except ConfigError:
        return out
    return out + (list(backend.recovery(config, scope)) if backend.recovery is not None else [])


def candidates_for(config: PipelineConfig, scope: Scope) -> list[Candidate]:
    """The declared candidates that change something and make a valid config, each once (first declaration
    wins), in declaration order."""
    seen: dict[str, Candidate] = {}
    for c in declared(config, scope):
        if c.id in seen:
            continue
        try:
            changed = compose(config, [c])
            check(changed)
        except ValueError:  # ConfigError: not a config this flow and backend can run
            continue
        if changed != config:
            seen[c.id] = c
    return list(seen.values())
