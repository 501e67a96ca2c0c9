"""The fx flow's QConfigMapping: qnnpack defaults (uint8 activations, int8 weights), as ExecuTorch's
BackendConfig expects them::

    mapping = fx_qconfig_mapping(PipelineConfig(mode="dynamic"))
"""
from __future__ import annotations

import torch
from torch import nn
from torch.ao.quantization import QConfig, QConfigMapping, default_dynamic_qconfig
from torch.ao.quantization.observer import (HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver,
                                           default_per_channel_weight_observer, default_weight_observer)
from torch.ao.quantization.qconfig import float_qparams_weight_only_qconfig
from torch.ao.quantization.qconfig_mapping import get_default_qconfig_mapping

from quantviz.config import PipelineConfig


OBSERVERS = {"minmax": MinMaxObserver, "moving_average": MovingAverageMinMaxObserver, "histogram": HistogramObserver}


def fx_qconfig_mapping(config: PipelineConfig) -> QConfigMapping:
    """The QConfigMapping for the fx flow: qnnpack defaults (uint8 activations, int8 weights); embeddings
    weight-only with float qparams; ``config.skip_modules`` get qconfig None."""
    if config.mode == "dynamic":
        mapping = QConfigMapping().set_object_type(nn.Linear, default_dynamic_qconfig) \
            .set_object_type(torch.nn.functional.linear, default_dynamic_qconfig)
    else:
        mapping = get_default_qconfig_mapping("qnnpack")
        observer = OBSERVERS.get(config.observer, HistogramObserver).with_args(reduce_range=False)
        if config.observer != "default":  # every op without fixed qparams observes its activations this way
            mapping.set_global(QConfig(activation=observer, weight=default_weight_observer))
        if config.per_channel or config.observer != "default":
            qconfig = QConfig(activation=observer, weight=default_per_channel_weight_observer
                              if config.per_channel else default_weight_observer)
            for op in (nn.Conv2d, nn.Linear, torch.nn.functional.conv2d, torch.nn.functional.linear):
                mapping.set_object_type(op, qconfig)
    mapping.set_object_type(nn.Embedding, float_qparams_weight_only_qconfig)
    for name in config.skip_modules:
        mapping.set_module_name(name, None)
    return mapping
