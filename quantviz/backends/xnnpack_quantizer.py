"""XNNPACKQuantizer for a config: int8, symmetric weights (per tensor or per channel), static or dynamic
activations. The portable and XNNPACK backends both quantize with it (ExecuTorch's quantized kernels run the same
scheme)::

    quantizer = xnnpack_quantizer(PipelineConfig(flow="pt2e", per_channel=True))
"""
from __future__ import annotations

from typing import Any

from quantviz.config import PipelineConfig


def xnnpack_quantizer(config: PipelineConfig) -> Any:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(
        is_per_channel=config.per_channel, is_dynamic=config.mode == "dynamic"))


def xnnpack_quantizer_calls(config: PipelineConfig) -> list[str]:
    return ["from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, "
            "get_symmetric_quantization_config",
            f"quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config("
            f"is_per_channel={config.per_channel}, is_dynamic={config.mode == 'dynamic'}))"]
