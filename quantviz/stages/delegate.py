"""delegate: to_backend with a partitioner; tagged dq-op-q groups become lowered-module calls."""
from __future__ import annotations

from quantviz.stages.base import StageContext, StageOutput

DESCRIPTION = "to_backend with a partitioner: chosen dq-op-q groups become calls to lowered modules"
EXPLANATION = (
    'A partitioner picks groups of nodes a backend can run; to_backend lowers each group into a call to a '
    'compiled delegate (XNNPACK here). What the partitioner leaves stays in the graph as q/dq around '
    'float ops.'
)


def make_partitioner(name: str):
    if name == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        return XnnpackPartitioner(), ["from executorch.backends.xnnpack.partition.xnnpack_partitioner import "
                                      "XnnpackPartitioner", "edge = edge.to_backend(XnnpackPartitioner())"]
    from quantviz.partitioners.demo import DemoConvAddPartitioner

    return DemoConvAddPartitioner(), ["from quantviz.partitioners.demo import DemoConvAddPartitioner",
                                      "edge = edge.to_backend(DemoConvAddPartitioner())"]


def run(ctx: StageContext) -> StageOutput:
    edge = ctx.artifact("edge")
    if ctx.config.partitioner == "none":
        return StageOutput(edge, notes=["no partitioner: nothing delegated"])
    from quantviz.why.partition_log import capture_why_no_partition

    partitioner, calls = make_partitioner(ctx.config.partitioner)
    reasons: dict[str, list[str]] = {}
    with capture_why_no_partition(reasons):  # XNNPACK's own WhyNoPartition reports, this call only
        lowered = edge.to_backend(partitioner)
    for name, why in getattr(partitioner, "reasons", {}).items():  # the demo partitioner's own reasons
        reasons.setdefault(name, []).extend(why)
    calls_made = sum(1 for n in lowered.exported_program().graph.nodes
                     if n.op == "call_function" and "executorch_call_delegate" in str(n.target))
    return StageOutput(lowered, calls=calls, notes=[f"{calls_made} delegate call(s)",
                                                    f"{len(reasons)} node(s) rejected with a reason"],
                       metrics={"delegate_calls": calls_made}, diagnostics={"partition_reasons": reasons})
