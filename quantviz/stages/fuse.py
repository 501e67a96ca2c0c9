"""fuse: rewrite remaining reference patterns into quantized operators (ExecuTorch's QuantFusionPass)."""
from __future__ import annotations

from quantviz.stages.base import StageContext, StageOutput

DESCRIPTION = "rewrite the remaining dq-op-q patterns into quantized operators (QuantFusionPass)"
EXPLANATION = (
    "Rewrites remaining reference patterns into quantized operators (ExecuTorch's QuantFusionPass knows "
    'add, add+relu, reshape-like ops and embeddings, for uint8). Anything not fused runs as dequantize, '
    'float op, quantize.'
)


def count_quantized_ops(edge) -> int:
    from quantviz.graph.kinds import canonical_target, classify

    return sum(1 for n in edge.exported_program().graph.nodes
               if n.op == "call_function" and classify(n, canonical_target(n.target), None, set()) == "quantized_op")


def run(ctx: StageContext) -> StageOutput:
    edge = ctx.artifact("delegate")
    if ctx.config.fusion == "none":
        return StageOutput(edge, notes=["fusion none: patterns left as q/dq around float ops"])
    import executorch.kernels.quantized  # noqa: F401  registers quantized_decomposed out-variants and kernels
    from executorch.exir.passes.quant_fusion_pass import QuantFusionPass

    before = count_quantized_ops(edge)
    fused = edge.transform([QuantFusionPass(_fix_node_meta_val=True)])
    added = count_quantized_ops(fused) - before
    return StageOutput(fused, calls=[
        "import executorch.kernels.quantized  # registers the quantized_decomposed kernels",
        "from executorch.exir.passes.quant_fusion_pass import QuantFusionPass",
        "edge = edge.transform([QuantFusionPass(_fix_node_meta_val=True)])"],
        notes=[f"{added} quantized operator(s) created by QuantFusionPass"], metrics={"fused_ops": added})
