"""delegate: a partitioner picks dq-op-q groups and each becomes a call to a lowered module.

With ``lowering="transform_and_lower"`` this is the second half of ``to_edge_transform_and_lower`` (the edge stage
ran the first); with ``"to_backend"`` it is ``edge.to_backend(partitioner)``. See :mod:`quantviz.lowering`.
"""
from __future__ import annotations

from quantviz.lowering import calls as lowering_calls
from quantviz.lowering import delegate, graph_ops, make_partitioner
from quantviz.stages.base import Diagnostics, StageContext, StageOutput
from quantviz.why.partition_log import capture_why_no_partition

DESCRIPTION = "partition and lower (to_edge_transform_and_lower or to_backend): dq-op-q groups become delegate calls"
EXPLANATION = (
    'A partitioner picks groups of nodes a backend can run; each group is lowered into a call to a '
    'compiled delegate (XNNPACK here). What the partitioner leaves stays in the graph as q/dq around '
    'float ops.'
)


def run(ctx: StageContext) -> StageOutput:
    edge = ctx.artifact("edge")
    if ctx.config.partitioner == "none":
        return StageOutput(edge, notes=["no partitioner: nothing delegated"])
    partitioner = make_partitioner(ctx.config.partitioner, ctx.config.delegate_granularity)[0]
    reasons: dict[str, list[str]] = {}
    with capture_why_no_partition(reasons):  # XNNPACK's own WhyNoPartition reports, this call only
        lowered = delegate(edge, partitioner, ctx.config.lowering)
    for name, why in getattr(partitioner, "reasons", {}).items():  # the demo partitioner's own reasons
        reasons.setdefault(name, []).extend(why)
    calls_made = graph_ops(lowered)[0]
    return StageOutput(lowered, calls=lowering_calls(ctx.config, "delegate"),
                       notes=[f"{calls_made} delegate call(s) ({ctx.config.lowering})",
                              f"{len(reasons)} node(s) rejected with a reason"],
                       metrics={"delegate_calls": calls_made}, diagnostics=Diagnostics(partition_reasons=reasons))
