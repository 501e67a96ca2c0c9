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


# What ``backend="auto"`` stands for under each flow, as the flow's record declares it (``Flow.default_backend``):
# ``quantviz.flows.discover`` hands each flow's here when it registers the flow (flows sit above the backends, so the
# backends never import them); None: the flow's own configuration names its backend (the recipe flow: the recipe's)
FLOW_DEFAULTS: dict[str, str | None] = {}


def register_flow_default(flow: str, backend: str | None) -> None:
    """Note that ``backend="auto"`` means ``backend`` under ``flow`` (``quantviz.flows.discover`` calls it)."""
    FLOW_DEFAULTS[flow] = backend


def partitioner_choices() -> tuple[str, ...]:
    """The ``--partitioner`` values: auto, none, the backends' own (``Backend.partitioner_choice``), demo."""
    return ("auto", "none", *(b.partitioner_choice for b in BACKENDS.values() if b.partitioner_choice), "demo")


def _partitioner_owner(config: PipelineConfig) -> Backend | None:
    """The backend whose ``partitioner_choice`` ``config.partitioner`` is (``--partitioner xnnpack``), or None."""
    return next((b for b in BACKENDS.values() if b.partitioner_choice and b.partitioner_choice == config.partitioner),
                None)


def _stands_for(config: PipelineConfig, owner: Backend) -> bool:
    """True when ``--partitioner`` naming ``owner`` can mean ``--backend owner``: the config's backend is "auto",
    that one, or one with no partitioner of its own (portable)."""
    chosen = BACKENDS.get(config.backend)
    return config.backend in ("auto", owner.name) or (chosen is not None and chosen.partitioner is None)


def normalize(config: PipelineConfig) -> PipelineConfig:
    """One config for one meaning: ``--partitioner NAME`` where NAME is a backend's ``partitioner_choice`` is
    ``--backend`` that backend with ``--partitioner auto``; a ConfigError when the config names another backend with
    a partitioner of its own. Applied where configs are resolved (``quantviz.flows.with_backend_defaults``, the
    pipeline, a sweep's grid) and checked (``check``)::

        normalize(PipelineConfig(flow="pt2e", partitioner="xnnpack"))   # PipelineConfig(flow="pt2e", backend="xnnpack")
    """
    owner = _partitioner_owner(config)
    if owner is None:
        return config
    if not _stands_for(config, owner):
        raise ConfigError(f"partitioner={config.partitioner!r} delegates to {owner.title}, but "
                          f"backend={config.backend!r}: use --backend {owner.name}, or --partitioner auto for the "
                          "backend's own")
    return config.with_changes(backend=owner.name, partitioner="auto")


def backend_name(config: PipelineConfig) -> str:
    """The backend ``config`` runs, by name: ``backend`` itself, unless it is "auto" or a backend without a
    partitioner while ``--partitioner`` names one (``normalize``); "auto": the default its flow declares
    (``Flow.default_backend``), or the flow's name under a flow whose configuration names its backend (the recipe
    flow: "recipe"; ``backend_of`` gives the recipe's backend)::

        backend_name(PipelineConfig(flow="torchao"))   # 'xnnpack'
        backend_name(PipelineConfig())                 # 'portable'
    """
    owner = _partitioner_owner(config)
    if owner is not None and _stands_for(config, owner):
        return owner.name
    if config.backend != "auto":
        return config.backend
    if config.flow not in FLOW_DEFAULTS:
        raise ConfigError(f"flow {config.flow!r} is not available: {', '.join(FLOW_DEFAULTS)}"
                          if FLOW_DEFAULTS else f"backend='auto' under flow {config.flow!r}: no flow has declared "
                          "its default backend (quantviz.flows registers them when it is imported)")
    default = FLOW_DEFAULTS[config.flow]
    return config.flow if default is None else default


def backend_of(config: PipelineConfig) -> Backend:
    """The backend ``config`` targets (``backend_name``; under the recipe flow, the backend whose recipe it is)."""
    if config.recipe:  # the recipe flow: the backend whose recipe it is
        return recipe_backend(config.recipe)
    name = backend_name(config)
    try:
        return BACKENDS[name]
    except KeyError:
        raise ConfigError(f"backend {name!r} is not available: {', '.join(BACKENDS)}") from None


def check(config: PipelineConfig) -> None:
    """The one validation of what the config's backend can take (its ``Backend`` capabilities); a ConfigError
    saying which backends have what the config asks for, e.g. ``activation_bits=16`` on XNNPACK."""
    if config.partitioner not in partitioner_choices():
        raise ConfigError(f"partitioner={config.partitioner!r} is not one of {', '.join(partitioner_choices())}")
    config = normalize(config)
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


__all__ = ["BACKENDS", "FLOW_DEFAULTS", "Backend", "PartitionerChoice", "Requirement", "all_recipes", "backend_name",
           "backend_of", "check", "normalize", "partitioner_choices", "recipe_backend", "recipe_type_of",
           "register_flow_default", "require_backend"]
