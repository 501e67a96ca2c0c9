"""coreml: Apple Core ML: ``CoreMLQuantizer`` (coremltools' symmetric int8) and ``CoreMLPartitioner`` for iOS 17
(quantized graphs need it). Lowering works on Linux; running does not (Core ML is macOS/iOS only): the run stage
says so and the .pte is written. Quantizing is slow (coremltools: minutes on a zoo model)::

    BACKEND.partitioner(PipelineConfig(flow="pt2e", backend="coreml")).constructor
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from quantviz.backends.base import Backend, PartitionerChoice, Requirement
from quantviz.config import PipelineConfig


def coreml_quantizer(config: PipelineConfig) -> Any:
    import torch
    from coremltools.optimize.torch.quantization.quantization_config import (
        LinearQuantizerConfig,
        QuantizationScheme,
    )
    from executorch.backends.apple.coreml.quantizer import CoreMLQuantizer

    qc = LinearQuantizerConfig.from_dict({"global_config": {
        "quantization_scheme": QuantizationScheme.symmetric, "milestones": [0, 0, 10, 10],
        "activation_dtype": torch.quint8, "weight_dtype": torch.qint8, "weight_per_channel": config.per_channel}})
    return CoreMLQuantizer(qc)


def coreml_quantizer_calls(config: PipelineConfig) -> list[str]:
    return ["from coremltools.optimize.torch.quantization.quantization_config import LinearQuantizerConfig, "
            "QuantizationScheme",
            "from executorch.backends.apple.coreml.quantizer import CoreMLQuantizer",
            "quantizer = CoreMLQuantizer(LinearQuantizerConfig.from_dict({'global_config': {"
            "'quantization_scheme': QuantizationScheme.symmetric, 'milestones': [0, 0, 10, 10], "
            f"'activation_dtype': torch.quint8, 'weight_dtype': torch.qint8, 'weight_per_channel': {config.per_channel}"
            "}}))"]


def coreml_partitioner(config: PipelineConfig) -> PartitionerChoice:
    import coremltools as ct
    from executorch.backends.apple.coreml.compiler import CoreMLBackend
    from executorch.backends.apple.coreml.partition import CoreMLPartitioner

    specs = CoreMLBackend.generate_compile_specs(minimum_deployment_target=ct.target.iOS17)
    return PartitionerChoice(CoreMLPartitioner(compile_specs=specs),
                             "import coremltools as ct\nfrom executorch.backends.apple.coreml.compiler import "
                             "CoreMLBackend\nfrom executorch.backends.apple.coreml.partition import CoreMLPartitioner",
                             "CoreMLPartitioner(compile_specs=CoreMLBackend.generate_compile_specs("
                             "minimum_deployment_target=ct.target.iOS17))")


@contextlib.contextmanager
def coreml_refusals(into: dict[str, list[str]]) -> Iterator[None]:
    """Core ML's support check logs each reason once per op: wrap it to keep (node, reason) for every node."""
    from executorch.backends.apple.coreml.partition import coreml_partitioner as cp

    original = cp._OperatorsSupportedForCoreMLBackend.is_node_supported

    def checked(self, submodules, node):
        said: list[str] = []
        log_once = self.log_once
        self.log_once = lambda msg: (said.append(msg), log_once(msg))
        try:
            ok = original(self, submodules, node)
        finally:
            self.log_once = log_once
        if not ok and node.op == "call_function":
            into.setdefault(node.name, []).append(
                "Core ML partitioner: " + (said[0] if said else "not supported by coremltools"))
        return ok

    cp._OperatorsSupportedForCoreMLBackend.is_node_supported = checked
    try:
        yield
    finally:
        cp._OperatorsSupportedForCoreMLBackend.is_node_supported = original


BACKEND = Backend(
    "coreml", "Apple Core ML (iOS 17): CoreMLQuantizer and CoreMLPartitioner; lowers here, runs only on Apple devices",
    quantizer=coreml_quantizer, quantizer_calls=coreml_quantizer_calls, quantizer_key="coreml",
    partitioner=coreml_partitioner, numbers="none",
    numbers_note="no runtime for this backend on this machine (Core ML runs on macOS and iOS only): the .pte is "
                 "written",
    requires=(Requirement("coremltools", "pip install 'quantviz[coreml]'  # coremltools==9.0"),),
    refusals=coreml_refusals, runtime_ids=("CoreMLBackend",),
    defaults={"flow": "pt2e"},  # CoreMLQuantizer is a PT2E quantizer: the backend alone runs its own quantizer
    on_backends_page=False, rank=6)  # its quantizer takes minutes on a zoo model
