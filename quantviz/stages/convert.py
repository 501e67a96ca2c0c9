"""convert, the slot's shared words: observers become quantize/dequantize ops around float ops (a reference
quantized model). The variants: ``convert_fx.py`` (``_convert_to_reference_decomposed_fx``) and ``convert_pt2e.py``
(``convert_pt2e`` with the backend's options)."""
from __future__ import annotations

from quantviz.stages.base import Remedy

DESCRIPTION = "turn observers into decomposed quantize/dequantize ops around float ops (reference model)"
EXPLANATION = (
    'Replaces every observer with a quantize/dequantize pair, giving a reference quantized model: float '
    'ops between q and dq. Each dq-op-q group is one reference quantized pattern, which later stages '
    'delegate or fuse.'
)


def remedy(other_flow: str) -> Remedy:
    """What to try when convert fails: the other observer flow, or static activations."""
    return Remedy("try the other flow (--flow fx / --flow pt2e) or --mode static",
                  ({"flow": other_flow}, {"mode": "static"}))
