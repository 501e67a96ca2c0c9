"""fuse: rewrite the remaining reference patterns into quantized operators.

``fusion`` picks whose patterns: ExecuTorch's QuantFusionPass (uint8 add/add_relu, reshapes, embeddings),
quantviz's own (``quantviz_kernels``: conv2d, linear, add, add_relu, mul, pools, mean, clamps and reshapes, int8
and uint8), or both (quantviz's first, then ExecuTorch's on what is left).

The torchao flow's variant is ``fuse_torchao.py`` (quantized embeddings).
"""
from __future__ import annotations

import copy

from quantviz.config import PipelineConfig
from quantviz.graph.kinds import canonical_target, classify
from quantviz.model_spec import ModelSpec
from quantviz.stages.base import Diagnostics, Remedy, Stage, StageContext, StageOutput

DESCRIPTION = "rewrite the remaining dq-op-q patterns into quantized operators (ExecuTorch's and/or quantviz's)"
EXPLANATION = (
    "Rewrites remaining reference patterns into quantized operators. ExecuTorch's QuantFusionPass knows add, "
    "add+relu, reshape-like ops and embeddings, for uint8 only; quantviz's patterns lower conv2d, linear, add, "
    "mul, pools, mean and clamps to its own C++ kernels, for int8 and uint8. Anything not fused runs as "
    "dequantize, float op, quantize."
)


def count_quantized_ops(edge) -> int:

    return sum(1 for m in edge.methods for n in edge.exported_program(m).graph.nodes
               if n.op == "call_function" and classify(n, canonical_target(n.target), None, set()) == "quantized_op")


def _quantviz(edge, calls: list[str], notes: list[str], metrics: dict, diagnostics: Diagnostics):
    from quantviz_kernels import fuse, load

    load()
    fused, result = fuse(edge)
    calls += ["from quantviz_kernels import fuse, load",
              "load()  # builds (once, cached) and loads the PyTorch and runtime kernel libraries",
              "edge, fusion = fuse(edge)  # quantviz's patterns, on a copy"]
    counts = result.counts()
    notes.append(f"quantviz patterns: {len(result.records)} node group(s) replaced"
                 + (f" ({', '.join(f'{n} {op}' for op, n in sorted(counts.items()))})" if counts else ""))
    if result.weights_rewritten:
        notes.append(f"{result.weights_rewritten} per-tensor weight dequantize(s) written in per-channel form "
                     "(same values) so one pattern covers both")
    for r in result.refusals:
        notes.append(f"quantviz pattern {r.pattern} not applied at {r.anchor}: {r.reason}")
    metrics["quantviz_fused"] = len(result.records)
    diagnostics.fusions = list(result.records)
    diagnostics.refusals = list(result.refusals)
    return fused


def _executorch(edge, calls: list[str], notes: list[str], metrics: dict, private: bool = False):
    import executorch.kernels.quantized  # noqa: F401  registers quantized_decomposed out-variants and kernels
    from executorch.exir.passes.quant_fusion_pass import QuantFusionPass

    before = count_quantized_ops(edge)
    # QuantFusionPass rewrites the graph module it is given, and ``transform`` hands it the input program's own:
    # without a copy the delegate stage's program (and the edge stage's, which it may be) would change too.
    # ``private``: the program is already this stage's own copy (quantviz's patterns made it).
    fused = (edge if private else copy.deepcopy(edge)).transform([QuantFusionPass(_fix_node_meta_val=True)])
    added = count_quantized_ops(fused) - before
    calls += ["import executorch.kernels.quantized  # registers the quantized_decomposed kernels",
              "from executorch.exir.passes.quant_fusion_pass import QuantFusionPass",
              "edge = copy.deepcopy(edge).transform([QuantFusionPass(_fix_node_meta_val=True)])  # it edits in place"]
    notes.append(f"{added} quantized operator(s) created by QuantFusionPass")
    metrics["fused_ops"] = added
    return fused


def run(ctx: StageContext) -> StageOutput:
    edge = ctx.previous()
    fusion = ctx.config.fusion
    if fusion == "none":
        return StageOutput(edge, notes=["fusion none: patterns left as q/dq around float ops"])
    calls: list[str] = []
    notes: list[str] = []
    metrics: dict = {}
    diagnostics = Diagnostics()
    if ctx.config.uses_quantviz_kernels:
        edge = _quantviz(edge, calls, notes, metrics, diagnostics)
    if ctx.config.uses_executorch_fusion:
        edge = _executorch(edge, calls, notes, metrics, private=fusion == "both")
    return StageOutput(edge, calls=calls, notes=notes, metrics=metrics, diagnostics=diagnostics)


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    """ExecuTorch's QuantFusionPass when the config asks for it (quantviz's patterns are not a bare call)."""
    if config.uses_executorch_fusion:
        from executorch.exir.passes.quant_fusion_pass import QuantFusionPass

        state["lowered"] = state["lowered"].transform([QuantFusionPass(_fix_node_meta_val=True)])


STAGE = Stage(
    "fuse", run, DESCRIPTION, EXPLANATION, reads=("fusion",),
    overlay="reference_vs_fused_sqnr_db",
    page_runs_torch=True,
    remedy=Remedy("try --fusion none, or the other patterns (--fusion executorch or --fusion quantviz)",
                  ({"fusion": "none"}, {"fusion": "executorch"})),
    bare=bare)
