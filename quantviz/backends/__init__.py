"""The backends, one file each (``quantviz/backends/<name>.py`` declares ``BACKEND``); the registry is derived: a
new backend is its file (and its tests).

Example::

    backend_of(PipelineConfig(backend="xnnpack")).partitioner(config).constructor   # 'XnnpackPartitioner()'
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

from quantviz.backends.base import Backend, PartitionerChoice, Requirement
from quantviz.config import ConfigError, PipelineConfig


def discover() -> dict[str, Backend]:
    """Every module of this package that declares ``BACKEND = Backend(...)`` (the helpers beside them declare none),
    by name, in rank order (``Backend.rank``, then name)."""
    here = Path(__file__).parent
    found = [importlib.import_module(f"{__name__}.{m.name}").BACKEND for m in pkgutil.iter_modules([str(here)])
             if "\nBACKEND = " in (here / f"{m.name}.py").read_text()]
    return {b.name: b for b in sorted(found, key=lambda b: (b.rank, b.name))}


BACKENDS: dict[str, Backend] = discover()


def backend_of(config: PipelineConfig) -> Backend:
    """The backend ``config`` targets (``backend="auto"`` resolved by ``PipelineConfig.target``; under the recipe
    flow, the backend whose recipe it is)."""
    if config.recipe:  # the recipe flow: the backend whose recipe it is
        return recipe_backend(config.recipe)
    try:
        return BACKENDS[config.target]
    except KeyError:
        raise ConfigError(f"backend {config.target!r} is not available: {', '.join(BACKENDS)}") from None


def check(config: PipelineConfig) -> None:
    """The one validation of what the config's backend can take (its ``Backend`` capabilities); a ConfigError
    saying which backends have what the config asks for, e.g. ``activation_bits=16`` on XNNPACK."""
    if config.recipe:  # the recipe's own backend and options: nothing of the config's is handed to it
        return
    backend = backend_of(config)
    if config.activation_bits not in backend.activation_bits:
        having = [b.name for b in BACKENDS.values() if config.activation_bits in b.activation_bits]
        raise ConfigError(f"activation_bits={config.activation_bits} (a16w8) needs a backend that has int"
                          f"{config.activation_bits} activations ({', '.join(having)}), not {backend.name!r}")
    if config.partitioner == "demo" and not backend.takes_xnnpack:
        raise ConfigError(f"partitioner='demo' lowers conv -> add groups to XNNPACK; backend {backend.name!r} "
                          "has its own partitioner (--partitioner auto)")


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


__all__ = ["BACKENDS", "Backend", "PartitionerChoice", "Requirement", "all_recipes", "backend_of", "check",
           "recipe_backend",
           "recipe_type_of", "require_backend"]
