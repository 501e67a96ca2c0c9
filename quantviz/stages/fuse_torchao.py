"""fuse (torchao): fuse what XNNPACK does not take. torchao's ``dequantize_affine`` + ``embedding`` becomes
``quantized_decomposed::embedding_byte`` / ``embedding_4bit`` (QuantFusionPass with the program's weight values, then
constant propagation, as ExecuTorch's own test of torchao embeddings does); with no quantized embedding there is
nothing for it to do, and it says so.
"""
from __future__ import annotations

import copy

from quantviz.config import PipelineConfig
from quantviz.lowering import method_order
from quantviz.model_spec import ModelSpec
from quantviz.stages.base import Remedy, Stage, StageContext, StageOutput
from quantviz.stages.fuse import DESCRIPTION, EXPLANATION, count_quantized_ops


def fuse_embeddings(edge, calls: list[str], notes: list[str], metrics: dict):
    import executorch.kernels.quantized  # noqa: F401  registers quantized_decomposed.embedding_* kernels
    from executorch.exir.passes.constant_prop_pass import constant_prop_pass
    from executorch.exir.passes.quant_fusion_pass import QuantFusionPass, _get_node_value_dict

    fused = copy.deepcopy(edge)  # QuantFusionPass rewrites the graph it is given (the delegate stage's)
    fused = _fuse_every_method(fused, QuantFusionPass, _get_node_value_dict, constant_prop_pass)
    added = count_quantized_ops(fused) - count_quantized_ops(edge)
    calls += ["import executorch.kernels.quantized  # registers the quantized_decomposed kernels",
              "from executorch.exir.passes.constant_prop_pass import constant_prop_pass",
              "from executorch.exir.passes.quant_fusion_pass import QuantFusionPass, _get_node_value_dict",
              "edge = copy.deepcopy(edge)  # QuantFusionPass edits the program in place",
              "values = _get_node_value_dict(edge.exported_program())  # the weights the embedding patterns read",
              "edge = edge.transform([QuantFusionPass(_fix_node_meta_val=True, node_value_dict=values)])",
              "constant_prop_pass(edge.exported_program())"]
    notes.append(f"{added} quantized embedding operator(s) created by QuantFusionPass (torchao's dequantize_affine "
                 "+ embedding, which XNNPACK does not take)")
    metrics["fused_ops"] = added
    return fused


def _fuse_every_method(edge, fusion_pass, node_values, constant_prop):
    """QuantFusionPass on every method (forward, and decode beside it), each with its own program's weight values,
    then constant propagation on each."""
    methods = method_order(edge)
    if methods == ["forward"]:  # one method: the call as a user's script writes it
        passes = [fusion_pass(_fix_node_meta_val=True, node_value_dict=node_values(edge.exported_program()))]
    else:
        passes = {m: [fusion_pass(_fix_node_meta_val=True, node_value_dict=node_values(edge.exported_program(m)))]
                  for m in methods}
    edge = edge.transform(passes)
    for m in methods:
        constant_prop(edge.exported_program(m))  # folds the weight packing ops QuantFusionPass adds
    return edge


def run(ctx: StageContext) -> StageOutput:
    edge = ctx.previous()
    if not ctx.config.quantize_embeddings:
        return StageOutput(edge, notes=["no quantized embedding (--quantize-embeddings 0): nothing to fuse; "
                                        "what XNNPACK takes is delegated, the rest runs in float"])
    calls: list[str] = []
    notes: list[str] = []
    metrics: dict = {}
    return StageOutput(fuse_embeddings(edge, calls, notes, metrics), calls=calls, notes=notes, metrics=metrics)


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    """QuantFusionPass for quantized embeddings, with the program's weight values."""
    if not config.quantize_embeddings:
        return
    from executorch.exir.passes.constant_prop_pass import constant_prop_pass
    from executorch.exir.passes.quant_fusion_pass import QuantFusionPass, _get_node_value_dict

    state["lowered"] = _fuse_every_method(state["lowered"], QuantFusionPass, _get_node_value_dict,
                                          constant_prop_pass)


STAGE = Stage(
    "fuse", run, DESCRIPTION, EXPLANATION, reads=("quantize_embeddings",), overlay="reference_vs_fused_sqnr_db",
    page_runs_torch=True, variant="fuse_torchao",
    remedy=Remedy("try --quantize-embeddings 0 (embeddings stay float)", ({"quantize_embeddings": 0},)),
    bare=bare)
