"""One file per operator, each a pattern and its replacement side by side. ``ALL`` holds the patterns of every
file in this folder (``base.py`` aside), found by listing it: a new file is tried without being registered here.

Each file's ``ORDER`` places its ``PATTERNS`` in ``ALL`` (lower first; within a file, its own order). Patterns that
swallow an activation come before the ones that do not, and the standalone activations after every op that can
swallow one, so conv -> relu -> quantize becomes one conv2d, not a conv2d and a hardtanh.
"""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from quantviz_kernels.patterns.base import FusionPattern


def pattern_modules() -> list[ModuleType]:
    """Every pattern file of this folder, by ``ORDER`` (then name); one without ``ORDER`` or ``PATTERNS`` is an error."""
    found = [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)
             if m.name != "base"]
    for module in found:
        for attr in ("ORDER", "PATTERNS"):
            if not hasattr(module, attr):
                raise AttributeError(f"{module.__name__} has no {attr}: every file in patterns/ declares "
                                     "ORDER (its place in ALL) and PATTERNS")
    return sorted(found, key=lambda m: (m.ORDER, m.__name__))


ALL: list[FusionPattern] = [p for module in pattern_modules() for p in module.PATTERNS]

__all__ = ["ALL", "FusionPattern", "pattern_modules"]
