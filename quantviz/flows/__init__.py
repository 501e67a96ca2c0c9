"""The flows, one file each (``quantviz/flows/<name>.py`` declares ``FLOW``); the registry is derived: every module of
this package but ``base`` is a flow, so a new flow is its file (and its tests), nothing else.

Example::

    flow = flow_of(PipelineConfig(flow="pt2e"))
    flow.names             # ('trace', 'prepare', ..., 'run')
    flow.roles["reference"]   # 'convert'
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
from dataclasses import Field, fields
from pathlib import Path
from types import ModuleType
from typing import Any, Collection

from quantviz.config import ConfigChanges, ConfigError, PipelineConfig
from quantviz.backends import BACKENDS, backend_name, backend_of, normalize, partitioner_choices, register_flow_default
from quantviz.backends import check as check_backend
from quantviz.flows.base import Absent, Flow, FlowRecordError
from quantviz.lowering import partitioner_name


def discover(package: ModuleType) -> dict[str, Flow]:
    """Every ``FLOW`` of ``package``'s modules (``base`` and private modules left out), by name, in rank order
    (``Flow.rank``; then by name); a FlowRecordError for a record that cannot work (``Flow.problems``: a flow
    without a ``runtime`` role would have empty numerics). Each flow's ``default_backend`` is handed to the backends
    (``quantviz.backends.register_flow_default``): ``backend="auto"`` under it is that backend."""
    found = []
    for m in pkgutil.iter_modules(package.__path__):
        if m.name != "base" and not m.name.startswith("_"):
            module = importlib.import_module(f"{package.__name__}.{m.name}")
            module.FLOW.raise_problems(module.__name__)
            register_flow_default(module.FLOW.name, module.FLOW.default_backend)
            found.append(module.FLOW)
    return {f.name: f for f in sorted(found, key=lambda f: (f.rank, f.name))}


FLOWS: dict[str, Flow] = discover(sys.modules[__name__])


def choices_of(f: Field) -> tuple[Any, ...] | None:
    """The values the CLI, the app and ``quantviz sweep`` offer for the config field ``f``: the flows registered
    here for ``flow``, "auto" and the backends (``quantviz.backends.BACKENDS``) for ``backend``, the generic ones and
    the backends' own for ``partitioner`` (``quantviz.backends.partitioner_choices``), else the field's own
    ``choices``."""
    if f.name == "flow":
        return tuple(FLOWS)
    if f.name == "backend":
        return ("auto", *BACKENDS)
    if f.name == "partitioner":
        return partitioner_choices()
    return f.metadata.get("choices")


def check(config: PipelineConfig) -> Flow:
    """The one validation of a config against the records: the flow exists, its backend can take what the config
    asks (``quantviz.backends.check``) and the flow can lower to it (``Flow.backend_refusal``); the flow, or a
    ConfigError."""
    flow = FLOWS.get(config.flow)
    if flow is None:
        raise ConfigError(f"flow {config.flow!r} is not available: {', '.join(FLOWS)}")
    check_backend(config)
    refusal = flow.backend_refusal(backend_of(config)) if flow.backend_refusal is not None else ""
    if refusal:
        raise ConfigError(refusal)
    return flow


def flow_of(config: PipelineConfig) -> Flow:
    """The flow ``config`` runs (checked: ``check``); a ConfigError when its ``until`` is not one of that flow's
    stages."""
    flow = check(config).for_config(config)
    if config.until not in flow.names:
        why = f" ({flow.absent[config.until]})" if config.until in flow.absent else ""
        raise ConfigError(f"until={config.until!r} is not a stage of the {flow.name} flow{why}: "
                          f"{', '.join(flow.names)}")
    return flow


def applies_to(field_name: str, flow: str) -> bool:
    """True when the option ``field_name`` means something under ``flow``: some stage of it reads the field
    (``Flow.options``, derived from the stage records), e.g. ``applies_to("scheme", "pt2e")`` is False."""
    record = FLOWS.get(flow)
    if record is None:
        return False
    if id(record) not in _OPTIONS:  # the recipe flow resolves a recipe to list them: once per record
        _OPTIONS[id(record)] = (record, record.options())
    return field_name in _OPTIONS[id(record)][1]


_OPTIONS: dict[int, tuple[Flow, frozenset[str]]] = {}  # a cache: id(flow) -> (the flow, kept alive; its options)


def with_backend_defaults(config: PipelineConfig, explicit: Collection[str] = frozenset()
                          ) -> tuple[PipelineConfig, ConfigChanges]:
    """``config`` (normalized: ``quantviz.backends.normalize``, ``--partitioner xnnpack`` is ``--backend xnnpack``)
    with the values its backend needs (``Backend.defaults``) where the user did not set the field
    (``explicit``: the fields the user chose, e.g. the CLI's flags given), it keeps PipelineConfig's default and its
    flow reads the field; and those changes (shown to the user: the pipeline notes them on the stage that reads
    them, and they are in its calls and reproduce.py)::

        with_backend_defaults(PipelineConfig(backend="xnnpack"))[1]                    # {"flow": "pt2e"}
        with_backend_defaults(PipelineConfig(backend="xnnpack"), explicit={"flow"})[1]  # {}: fx, as chosen
        with_backend_defaults(PipelineConfig(flow="pt2e", backend="vulkan"))[1]       # {"per_channel": True}
    """
    defaults = {f.name: f.default for f in fields(PipelineConfig)}
    changes: ConfigChanges = {}
    config = normalize(config)  # --partitioner xnnpack is --backend xnnpack (``Backend.partitioner_choice``)
    while not config.recipe:  # the recipe is the backend's own configuration
        reads = flow_of(config).reads(config)  # a default may change the flow (Vulkan: pt2e), and so the reads
        more = {name: value for name, value in backend_of(config).defaults.items()
                if name in reads and name not in changes and name not in explicit
                and getattr(config, name) == defaults[name] and value != defaults[name]}
        if not more:
            break
        changes.update(more)
        config = config.with_changes(**more)
    return config, changes


def describe_config(config: PipelineConfig) -> str:
    """One line: the flow and the options it uses, e.g. "flow pt2e, mode static, backend xnnpack, fusion executorch"."""
    if config.flow == "recipe":
        return f"recipe {config.recipe}"
    if config.flow == "export_llm":  # a shipped YAML by its folder and name, a file an override names by its name
        return ", ".join([f"export_llm {_short_path(config.llm_config)}",
                          *(_short_override(o) for o in config.llm_overrides)])
    parts = [f"flow {config.flow}"]
    if config.flow == "torchao":
        parts.append(f"scheme {config.scheme}" + (f", group size {config.group_size}" if config.scheme == "8da4w"
                                                   else ""))
    else:
        parts.append(f"mode {config.mode}")
    parts.append(f"backend {backend_name(config)}, partitioner {partitioner_name(config)}")
    if config.flow in ("fx", "pt2e"):
        parts.append(f"fusion {config.fusion}")
    return ", ".join(parts)


def _short_path(path: str) -> str:
    """``llama/llama_xnnpack.yaml`` for a YAML file executorch ships (``.../examples/models/llama/config/...``)."""
    parts = Path(path).parts
    if "examples" in parts and len(parts) >= 3 and parts[-2] == "config":
        return f"{parts[-3]}/{parts[-1]}"
    return path


def _short_override(override: str) -> str:
    """``base.params=tiny_params.json``: an override naming a file, by the file's name."""
    key, sep, value = override.partition("=")
    return f"{key}={Path(value).name}" if sep and "/" in value else override


__all__ = ["FLOWS", "Absent", "Flow", "FlowRecordError", "applies_to", "check", "choices_of", "describe_config",
           "discover", "flow_of", "with_backend_defaults"]
