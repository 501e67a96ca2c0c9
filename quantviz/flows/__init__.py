"""The flows, one file each (``quantviz/flows/<name>.py`` declares ``FLOW``); the registry is derived.

Example::

    flow = flow_of(PipelineConfig(flow="pt2e"))
    flow.names             # ('trace', 'prepare', ..., 'run')
    flow.roles["reference"]   # 'convert'
"""
from __future__ import annotations

from quantviz.config import ConfigError, PipelineConfig
from quantviz.flows import export_llm, fx, pt2e, recipe, torchao
from quantviz.flows.base import Absent, Flow
from quantviz.lowering import partitioner_name

FLOWS: dict[str, Flow] = {m.FLOW.name: m.FLOW for m in (fx, pt2e, torchao, recipe, export_llm)}


def flow_of(config: PipelineConfig) -> Flow:
    """The flow ``config`` runs; a ConfigError when its ``until`` is not one of that flow's stages."""
    flow = FLOWS.get(config.flow)
    if flow is None:
        raise ConfigError(f"flow {config.flow!r} is not available: {', '.join(FLOWS)}")
    flow = flow.for_config(config)
    if config.until not in flow.names:
        why = f" ({flow.absent[config.until]})" if config.until in flow.absent else ""
        raise ConfigError(f"until={config.until!r} is not a stage of the {flow.name} flow{why}: "
                          f"{', '.join(flow.names)}")
    return flow


def describe_config(config: PipelineConfig) -> str:
    """One line: the flow and the options it uses, e.g. "flow pt2e, mode static, backend xnnpack, fusion executorch"."""
    if config.flow == "recipe":
        return f"recipe {config.recipe}"
    if config.flow == "export_llm":
        return f"export_llm {config.llm_config} {' '.join(config.llm_overrides)}".rstrip()
    parts = [f"flow {config.flow}"]
    if config.flow == "torchao":
        parts.append(f"scheme {config.scheme}" + (f", group size {config.group_size}" if config.scheme == "8da4w"
                                                   else ""))
    else:
        parts.append(f"mode {config.mode}")
    parts.append(f"backend {config.target}, partitioner {partitioner_name(config)}")
    if config.flow in ("fx", "pt2e"):
        parts.append(f"fusion {config.fusion}")
    return ", ".join(parts)


__all__ = ["FLOWS", "Absent", "Flow", "describe_config", "flow_of"]
