"""edge (fx): the fx reference model needs two small weight passes to run in ExecuTorch at all (convert_pt2e folds
its weights itself): int8 weights folded into constants, scalar q/dq parameters; then ``to_edge`` as every flow."""
from __future__ import annotations

import dataclasses

from quantviz.passes.fold_weight_quantize import fold_weight_quantize
from quantviz.passes.scalar_qparams import scalar_qparams
from quantviz.stages import edge
from quantviz.stages.base import StageContext, StageOutput


def run(ctx: StageContext) -> StageOutput:
    ep = ctx.previous()  # the captured program, rewritten in place by the two passes
    ep, folded = fold_weight_quantize(ep)
    ep, scalarised = scalar_qparams(ep)
    calls = ["from quantviz.passes.fold_weight_quantize import fold_weight_quantize",
             "from quantviz.passes.scalar_qparams import scalar_qparams",
             "aten_program, _ = fold_weight_quantize(aten_program)  # int8 weights, as convert_pt2e folds them",
             "aten_program, _ = scalar_qparams(aten_program)  # runtime wants scalar (or float64) qparams"]
    return edge.to_edge(ctx, ep, calls, folded, scalarised)


STAGE = dataclasses.replace(edge.STAGE, run=run, variant="edge_fx")
