"""Named models other packages offer (``sample:NAME``), found through entry points, so the library imports none.

A package offers models by naming a module in the entry-point group ``quantviz.samples``; the module has
``SAMPLES`` (name -> one-line description) and ``load_sample(name) -> ModelSpec``. quantviz's own samples are
registered that way in pyproject.toml::

    [project.entry-points."quantviz.samples"]
    quantviz = "sample_models"

    catalog()                  # {'conv_add': 'conv2d + add + relu ...', ...}
    load_sample("digits_cnn")  # ModelSpec
"""
from __future__ import annotations

import functools
import importlib.metadata
from types import ModuleType

from quantviz.errors import LoadError
from quantviz.model_spec import ModelSpec

GROUP = "quantviz.samples"


@functools.lru_cache(maxsize=1)
def _providers() -> tuple[ModuleType, ...]:
    return tuple(ep.load() for ep in importlib.metadata.entry_points(group=GROUP))


def catalog() -> dict[str, str]:
    """Every registered sample's name and description, in registration order."""
    out: dict[str, str] = {}
    for provider in _providers():
        out.update(provider.SAMPLES)
    return out


def load_sample(name: str) -> ModelSpec:
    """The ``ModelSpec`` of the registered sample ``name``."""
    for provider in _providers():
        if name in provider.SAMPLES:
            return provider.load_sample(name)
    known = ", ".join(catalog()) or f"none (no package registers the entry-point group {GROUP!r}; reinstall quantviz)"
    raise LoadError(f"there is no sample model {name!r}; the samples are: {known}")
