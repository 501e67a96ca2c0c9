"""prepare, the slot's shared helpers: insert observers where the backend can run quantized ops.

The variants are one file each: ``prepare_fx.py`` (``prepare_fx`` with a ``QConfigMapping`` and ExecuTorch's
``BackendConfig``) and ``prepare_pt2e.py`` (``prepare_pt2e`` with the backend's quantizer).
"""
from __future__ import annotations

from quantviz.backends import Backend
from quantviz.config import PipelineConfig
from quantviz.quantizers.skip_modules import SkipModulesQuantizer
from quantviz.stages.base import Remedy
from quantviz.untraceable import FINDINGS_ATTR, Untraceable

DESCRIPTION = "insert observers (fx: prepare_fx + ExecuTorch BackendConfig; pt2e: prepare_pt2e + the backend's quantizer)"
EXPLANATION = (
    'Inserts observers at every point the backend can run a quantized op. Which ops, dtypes and ranges '
    "come from the QConfigMapping and ExecuTorch's BackendConfig (fx) or from the backend's quantizer's "
    'annotations (pt2e: XNNPACKQuantizer, TOSAQuantizer, ...).'
)


def pt2e_quantizer(config: PipelineConfig, backend: Backend):  # -> Quantizer
    """``backend``'s quantizer for ``config``, with ``config.skip_modules`` left float."""
    quantizer = backend.quantizer(config)
    if config.skip_modules:
        quantizer = SkipModulesQuantizer(quantizer, config.skip_modules)
    return quantizer


def pt2e_quantizer_calls(config: PipelineConfig, backend: Backend) -> list[str]:
    """The quantizer as a user's script builds it; skipped modules through quantviz's wrapper, because
    XNNPACKQuantizer refuses ``set_module_name(name, None)``."""
    skip = [f"from quantviz.quantizers.skip_modules import SkipModulesQuantizer  # leaves these modules "
            "unannotated (XNNPACKQuantizer refuses set_module_name(name, None))",
            f"quantizer = SkipModulesQuantizer(quantizer, skip={tuple(config.skip_modules)!r})"]
    return [*backend.quantizer_calls(config), *(skip if config.skip_modules else [])]


def findings_of(traced: object) -> Untraceable | None:
    """The trace stage's :class:`~quantviz.untraceable.Untraceable` findings, attached to its GraphModule."""
    return getattr(traced, FINDINGS_ATTR, None)


def remedy(other_flow: str) -> Remedy:
    """What to try when prepare fails: the other observer flow, or skipping the module the message names."""
    return Remedy("try --flow pt2e or --flow fx, or skip the module named in the message with --skip-module",
                  ({"flow": other_flow},))
