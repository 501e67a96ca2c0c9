"""XNNPACKQuantizer for a config: int8, symmetric weights (per tensor or per channel), static or dynamic
activations. The portable and XNNPACK backends both quantize with it (ExecuTorch's quantized kernels run the same
scheme)::

    quantizer = xnnpack_quantizer(PipelineConfig(flow="pt2e", per_channel=True))
"""
from __future__ import annotations

from typing import Any

from quantviz.config import PipelineConfig
from quantviz.candidates import Candidate, Scope, other_observers, per_channel


def xnnpack_quantizer(config: PipelineConfig) -> Any:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    qconfig = get_symmetric_quantization_config(is_per_channel=config.per_channel,
                                                is_dynamic=config.mode == "dynamic")
    if config.observer != "default" and config.mode == "static":
        qconfig = with_activation_observer(qconfig, config.observer)
    return XNNPACKQuantizer().set_global(qconfig)


OBSERVER_CLASSES = {"minmax": "MinMaxObserver", "moving_average": "MovingAverageMinMaxObserver",
                    "histogram": "HistogramObserver"}  # torchao.quantization.pt2e's observer names


def with_activation_observer(qconfig: Any, observer: str) -> Any:
    """``qconfig`` with its static activations observed by ``observer`` ("minmax", "moving_average",
    "histogram") instead of the quantizer's own; weights keep theirs::

        qconfig = with_activation_observer(get_symmetric_quantization_config(), "minmax")
    """
    import dataclasses

    from torchao.quantization.pt2e import observer as observers

    ctr = getattr(observers, OBSERVER_CLASSES[observer]).with_args(eps=2**-12)

    def swap(spec: Any) -> Any:
        return dataclasses.replace(spec, observer_or_fake_quant_ctr=ctr) if spec is not None else None

    return dataclasses.replace(qconfig, input_activation=swap(qconfig.input_activation),
                               output_activation=swap(qconfig.output_activation))


def xnnpack_quantizer_calls(config: PipelineConfig) -> list[str]:
    lines = ["from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, "
             "get_symmetric_quantization_config",
             f"qconfig = get_symmetric_quantization_config(is_per_channel={config.per_channel}, "
             f"is_dynamic={config.mode == 'dynamic'})"]
    if config.observer != "default" and config.mode == "static":
        lines += ["from quantviz.backends.xnnpack_quantizer import with_activation_observer  # dataclasses.replace "
                  "of the activation specs' observer",
                  f"qconfig = with_activation_observer(qconfig, {config.observer!r})"]
    return lines + ["quantizer = XNNPACKQuantizer().set_global(qconfig)"]


def xnnpack_quantizer_recovery(config: PipelineConfig, scope: Scope) -> list[Candidate]:
    """XNNPACKQuantizer's own options ``quantviz recover`` may try (pt2e, where it quantizes): per-channel weights
    and another activation observer::

        [c.id for c in xnnpack_quantizer_recovery(PipelineConfig(flow="pt2e"), Scope())]
        # ['per_channel', 'observer:minmax', 'observer:moving_average']
    """
    return [*([per_channel()] if not config.per_channel else []), *other_observers(config, "histogram")]
