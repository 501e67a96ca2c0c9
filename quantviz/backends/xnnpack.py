"""xnnpack: XNNPACKQuantizer (int8) and XnnpackPartitioner; the .pte runs in the runtime on this machine.

``delegate_granularity="op"`` makes every op the partitioner takes its own delegate (``per_op_mode``), so the
runtime's debug buffer holds each delegated op's output::

    choice = BACKEND.partitioner(PipelineConfig(backend="xnnpack", delegate_granularity="op"))
    choice.constructor   # 'XnnpackPartitioner(per_op_mode=True)'
"""
from __future__ import annotations

from quantviz.backends.partition_log import xnnpack_supported_targets
from quantviz.backends.base import Backend, PartitionerChoice
from quantviz.backends.xnnpack_quantizer import (xnnpack_quantizer, xnnpack_quantizer_calls,
                                                  xnnpack_quantizer_recovery)
from quantviz.config import PipelineConfig


def xnnpack_partitioner(config: PipelineConfig) -> PartitionerChoice:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    per_op = config.delegate_granularity == "op"
    return PartitionerChoice(
        XnnpackPartitioner(per_op_mode=per_op),
        "from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner",
        "XnnpackPartitioner(per_op_mode=True)" if per_op else "XnnpackPartitioner()")


def xnnpack_recipes() -> dict:
    """Every XNNPackRecipeType by its value (importing the package registers XNNPACK's recipe provider)."""
    from executorch.backends.xnnpack.recipes import XNNPackRecipeType

    return {t.value: t for t in XNNPackRecipeType}


BACKEND = Backend(
    "xnnpack", "XNNPACK: XNNPACKQuantizer (int8) and XnnpackPartitioner, run by the runtime here",
    quantizer=xnnpack_quantizer, quantizer_calls=xnnpack_quantizer_calls, quantizer_key="xnnpack-int8",
    partitioner=xnnpack_partitioner, numbers="runtime", recipes=xnnpack_recipes,
    recovery=xnnpack_quantizer_recovery, takes_xnnpack=True, pt2e_qat=True, splits_per_op=True, int4_group_step=32,
    supported_ops=xnnpack_supported_targets, rank=1,
    # --partitioner xnnpack (the seed's spelling) is --backend xnnpack: quantviz.backends.normalize
    partitioner_choice="xnnpack",
    # its partitioner refuses the fx flow's reference programs on real models (MobileNetV2: "Invalid partition, found
    # dependency cycles"); its own quantizer's flow lowers them whole. `--flow fx` given is kept
    defaults={"flow": "pt2e"})
