"""The backends, one file each (``quantviz/backends/<name>.py`` declares ``BACKEND``); the registry is derived.

Example::

    backend_of(PipelineConfig(backend="xnnpack")).partitioner(config).constructor   # 'XnnpackPartitioner()'
"""
from __future__ import annotations

from quantviz.backends import arm_tosa, coreml, ethos_u, openvino, portable, vulkan, xnnpack
from quantviz.backends.base import Backend, PartitionerChoice, Requirement
from typing import Any

from quantviz.config import ConfigError, PipelineConfig

BACKENDS: dict[str, Backend] = {m.BACKEND.name: m.BACKEND for m in (portable, xnnpack, arm_tosa, ethos_u, openvino,
                                                                 vulkan, coreml)}


def backend_of(config: PipelineConfig) -> Backend:
    """The backend ``config`` targets (``backend="auto"`` resolved by ``PipelineConfig.target``; under the recipe
    flow, the backend whose recipe it is)."""
    if config.flow == "recipe":
        return recipe_backend(config.recipe)
    try:
        return BACKENDS[config.target]
    except KeyError:
        raise ConfigError(f"backend {config.target!r} is not available: {', '.join(BACKENDS)}") from None


def require_backend(config: PipelineConfig) -> Backend:
    """The config's backend, or a ConfigError naming the missing package and the pip command that installs it."""
    backend = backend_of(config)
    missing = backend.missing()
    if missing:
        raise ConfigError(f"backend {backend.name!r} needs the Python package '{missing[0].module}', which is not "
                          f"installed: {missing[0].pip}")
    return backend


def all_recipes() -> dict[str, tuple[Backend, Any]]:
    """Every export recipe of every backend that declares some: name -> (backend, RecipeType)."""
    out: dict[str, tuple[Backend, Any]] = {}
    for backend in BACKENDS.values():
        if backend.recipes is not None and not backend.missing():
            out.update({name: (backend, rtype) for name, rtype in backend.recipes().items()})
    return out


def recipe_backend(name: str) -> Backend:
    """The backend whose export recipe ``name`` is; a ConfigError listing the recipes when none is."""
    found = all_recipes().get(name)
    if found is None:
        raise ConfigError(f"no export recipe named {name!r}: {', '.join(all_recipes())}")
    return found[0]


def recipe_type_of(name: str) -> Any:
    """The RecipeType named ``name``, e.g. ``recipe_type_of("xnnpack_fp32")`` is ``XNNPackRecipeType.FP32``."""
    recipe_backend(name)
    return all_recipes()[name][1]


__all__ = ["BACKENDS", "Backend", "PartitionerChoice", "Requirement", "all_recipes", "backend_of", "recipe_backend",
           "recipe_type_of", "require_backend"]
