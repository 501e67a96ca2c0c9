"""Small models shipped with quantviz, each with its data. No downloads.

Each sample is a module here with ``DESCRIPTION`` and ``make_spec() -> ModelSpec``.
"""
from __future__ import annotations

import importlib

from quantviz.model_spec import ModelSpec

SAMPLES: dict[str, str] = {
    "conv_add": "conv2d + add + relu: the seed flow's QuantizedConvAdd example",
    "digits_cnn": "small CNN trained on scikit-learn's digits; real float vs int8 accuracy",
    "mlp_dynamic": "three linear layers, for dynamic quantization (choose_qparams -> q -> dq)",
    "mobilenet_v2": "MobileNetV2-style net: inverted residuals, depthwise convs, relu6, residual adds",
    "tiny_transformer": "one encoder block: attention, layernorm, softmax, gelu (several ops stay unfused)",
    "not_traceable": "a submodule with Python control flow on its input: trace fails until it is skipped",
    "embedding": "embedding + mean + linear text classifier (embedding quantization patterns)",
}


def load_sample(name: str) -> ModelSpec:
    """Build the sample model ``name``, e.g. ``load_sample("digits_cnn")``."""
    if name not in SAMPLES:
        raise KeyError(name)
    module = importlib.import_module(f"sample_models.{name}")
    spec: ModelSpec = module.make_spec()
    spec.description = SAMPLES[name]
    return spec
