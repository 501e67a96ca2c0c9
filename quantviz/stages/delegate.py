"""delegate: a partitioner picks dq-op-q groups and each becomes a call to a lowered module.

With ``lowering="transform_and_lower"`` this is the second half of ``to_edge_transform_and_lower`` (the edge stage
ran the first); with ``"to_backend"`` it is ``edge.to_backend(partitioner)``. See :mod:`quantviz.lowering`.
"""
from __future__ import annotations

import contextlib
import io

from quantviz.backends.partition_log import capture_why_no_partition
from quantviz.lowering import calls as lowering_calls
from quantviz.lowering import delegate, graph_ops, method_order, partitioner_for, partitioner_key, partitioner_name
from quantviz.lowering_progress import lowering_progress
from quantviz.stages.base import Diagnostics, Remedy, Stage, StageContext, StageOutput

DESCRIPTION = "partition and lower (to_edge_transform_and_lower or to_backend): dq-op-q groups become delegate calls"
EXPLANATION = (
    'A partitioner picks groups of nodes a backend can run; each group is lowered into a call to a '
    'compiled delegate (XNNPACK, TOSA, OpenVINO, ...). What the partitioner leaves stays in the graph as q/dq '
    'around float ops.'
)


def run(ctx: StageContext) -> StageOutput:
    edge = ctx.previous()
    choice = partitioner_for(ctx.config)
    if choice is None:
        return StageOutput(edge, notes=["no partitioner: nothing delegated"])
    partitioner = choice.partitioner
    reasons: dict[str, list[str]] = {}
    # ExecuTorch's WhyNoPartition reports (XNNPACK's), and what the backend's own partitioner refuses
    printed = io.StringIO()  # Vela prints its summary: keep it with the stage, not on the terminal
    with capture_why_no_partition(reasons), ctx.backend.capture_refusals(reasons), \
            contextlib.redirect_stdout(printed), lowering_progress(ctx.progress, [partitioner]):
        lowered = delegate(edge, partitioner, ctx.config.lowering)
    for name, why in getattr(partitioner, "reasons", {}).items():  # the demo partitioner's own reasons
        reasons.setdefault(name, []).extend(why)
    calls_made = graph_ops(lowered)[0]
    notes = [f"{calls_made} delegate call(s) ({ctx.config.lowering})", f"{len(reasons)} node(s) rejected with a reason"]
    methods = method_order(lowered)
    if methods != ["forward"]:  # the model's other methods, lowered with the same partitioner in the same call
        notes[0] += " in forward; " + ", ".join(f"{graph_ops(lowered.exported_program(m))[0]} in {m}"
                                                for m in methods if m != "forward")
    text = printed.getvalue()
    if text.strip():
        notes.append(f"the backend's compiler printed {len(text.splitlines())} line(s) while lowering (kept in the "
                     "stage's diagnostics)")
    return StageOutput(lowered, calls=lowering_calls(ctx.config, "delegate"), notes=notes,
                       metrics={"delegate_calls": calls_made},
                       diagnostics=Diagnostics(partition_reasons=reasons, printed=text))


STAGE = Stage(
    "delegate", run, DESCRIPTION, EXPLANATION, reads=("partitioner", "delegate_granularity", "backend"),
    key=partitioner_key, overlay="reference_vs_fused_sqnr_db", page_runs_torch=True,
    remedy=Remedy("try --partitioner none to see the graph without delegation", ({"partitioner": "none"},)),
    bare=None)  # part of the edge stage's bare call (to_edge_transform_and_lower)
