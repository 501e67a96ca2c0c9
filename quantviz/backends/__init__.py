"""The backends, one file each (``quantviz/backends/<name>.py`` declares ``BACKEND``); the registry is derived.

Example::

    backend_of(PipelineConfig(backend="xnnpack")).partitioner(config).constructor   # 'XnnpackPartitioner()'
"""
from __future__ import annotations

from quantviz.backends import portable, xnnpack
from quantviz.backends.base import Backend, PartitionerChoice, Requirement
from quantviz.config import ConfigError, PipelineConfig

BACKENDS: dict[str, Backend] = {m.BACKEND.name: m.BACKEND for m in (portable, xnnpack)}


def backend_of(config: PipelineConfig) -> Backend:
    """The backend ``config`` targets (``backend="auto"`` resolved by ``PipelineConfig.target``)."""
    try:
        return BACKENDS[config.target]
    except KeyError:
        raise ConfigError(f"backend {config.target!r} is not available: {', '.join(BACKENDS)}") from None


__all__ = ["BACKENDS", "Backend", "PartitionerChoice", "Requirement", "backend_of"]
