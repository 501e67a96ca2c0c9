"""vulkan: ``VulkanPartitioner`` (GPU shaders; lowering needs no GPU). ``VulkanQuantizer`` annotates linear layers
only, so static quantization uses ``XNNPACKQuantizer``, as Vulkan's own tests do. Lowering keeps dim order
(``EdgeCompileConfig(_skip_dim_order=False)``) and narrows int64 to int32 (``I64toI32``). No ``VulkanBackend`` in
the runtime here: the run stage says so and the .pte is written::

    BACKEND.numbers   # "none"
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from quantviz.backends.base import Backend, PartitionerChoice
from quantviz.backends.xnnpack_quantizer import xnnpack_quantizer, xnnpack_quantizer_calls
from quantviz.config import PipelineConfig


def vulkan_partitioner(config: PipelineConfig) -> PartitionerChoice:
    from executorch.backends.vulkan.partitioner.vulkan_partitioner import VulkanPartitioner

    return PartitionerChoice(VulkanPartitioner({}), "from executorch.backends.vulkan.partitioner.vulkan_partitioner "
                                                    "import VulkanPartitioner", "VulkanPartitioner({})")


def i64_to_i32(compile_config: Any) -> list[Any]:
    from executorch.backends.transforms.convert_dtype_pass import I64toI32

    return [I64toI32(compile_config._skip_dim_order)]


@contextlib.contextmanager
def vulkan_refusals(into: dict[str, list[str]]) -> Iterator[None]:
    """Vulkan logs each refusal (``log_skip(node, reason)``) on the root logger: wrap it to keep (node, reason)."""
    from executorch.backends.vulkan.partitioner.vulkan_partitioner import VulkanSupportedOperators

    original = VulkanSupportedOperators.log_skip

    def log_skip(self, node, reason):
        if node.op == "call_function" and f"Vulkan partitioner: {reason}" not in into.get(node.name, []):
            into.setdefault(node.name, []).append(f"Vulkan partitioner: {reason}")
        return original(self, node, reason)

    VulkanSupportedOperators.log_skip = log_skip
    try:
        yield
    finally:
        VulkanSupportedOperators.log_skip = original


BACKEND = Backend(
    "vulkan", "Vulkan (GPU): XNNPACKQuantizer's int8 scheme and VulkanPartitioner; lowers here, no runtime",
    quantizer=xnnpack_quantizer, quantizer_calls=xnnpack_quantizer_calls, quantizer_key="xnnpack-int8",
    partitioner=vulkan_partitioner, numbers="none",
    numbers_note="no runtime for this backend on this machine (the ExecuTorch runtime here has no VulkanBackend): "
                 "the .pte is written",
    compile_options={"_skip_dim_order": False}, transform_passes=i64_to_i32,
    transform_passes_call="[I64toI32(compile_config._skip_dim_order)]  # from "
                          "executorch.backends.transforms.convert_dtype_pass import I64toI32",
    refusals=vulkan_refusals, runtime_ids=("VulkanBackend",),
    # its quantizer's flow (pt2e; the fx reference model's patterns do not fuse in its passes) with per-channel
    # weights (its quantized convolution takes no others)
    defaults={"flow": "pt2e", "per_channel": True}, rank=5)
