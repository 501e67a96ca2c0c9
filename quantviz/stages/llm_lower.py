"""lower (export_llm): ``LLMEdgeManager.to_edge_transform_and_lower(partitioners)`` with the XNNPACK partitioners
export_llm makes (dynamically quantized linears first, then every op XNNPACK takes with
``backend.xnnpack.extended_ops``), as ``export_llama_lib._to_edge_and_lower_llama_xnnpack`` calls it."""
from __future__ import annotations

from quantviz.lowering_progress import lowering_progress
from quantviz.stages.base import Remedy, Stage, StageContext, StageOutput
from quantviz.stages.llm_source import READS

DESCRIPTION = "export_llm: to_edge_transform_and_lower with export_llm's XNNPACK partitioners"
EXPLANATION = (
    "export_llm re-exports the (quantized) graph and lowers it with to_edge_transform_and_lower: XNNPACK's "
    "partitioner for dynamically quantized linears first, then (extended_ops) one for every op XNNPACK takes. "
    "The custom SDPA and KV cache update ops stay outside the delegate."
)


def op_text(target) -> str:
    """``aten.mean.dim`` for an edge op (whose repr carries its whole schema), the name of anything else."""
    text = str(target)
    if text.startswith("<EdgeOpOverload: "):
        return text.removeprefix("<EdgeOpOverload: ").split(">", 1)[0]
    return getattr(target, "__name__", None) or text


def run(ctx: StageContext) -> StageOutput:
    from executorch.extension.llm.export.partitioner_lib import get_xnnpack_partitioner

    manager = ctx.previous()
    xnn = manager.quantviz_llm_config.backend.xnnpack
    partitioners = [get_xnnpack_partitioner(dynamic_quant_only_partitioner=True, enable_bf16=xnn.enable_bf16)]
    if xnn.extended_ops:
        partitioners.append(get_xnnpack_partitioner(dynamic_quant_only_partitioner=False,
                                                    enable_bf16=xnn.enable_bf16))
    if manager.quantviz_llm_config.debug.generate_etrecord:
        manager.generate_etrecord = True
    with lowering_progress(ctx.progress, partitioners, edge_share=0.3):  # edge then delegation, in one call
        manager.to_edge_transform_and_lower(partitioners)
    edge = manager.edge_manager
    gm = edge.exported_program().graph_module
    delegates = sum(1 for n in gm.graph.nodes if "call_delegate" in str(n.target))
    outside = sorted({op_text(n.target) for n in gm.graph.nodes if n.op == "call_function"
                      and "call_delegate" not in str(n.target) and "getitem" not in str(n.target)})
    return StageOutput(edge, graph_source=edge, metrics={"delegates": delegates},
                       notes=[f"{len(partitioners)} XNNPACK partitioner(s); {delegates} delegate call(s)",
                              "ops outside the delegates: " + (", ".join(outside[:12]) or "none")],
                       calls=["partitioners = [get_xnnpack_partitioner(dynamic_quant_only_partitioner=True)"
                              + (", get_xnnpack_partitioner(dynamic_quant_only_partitioner=False)]"
                                 if xnn.extended_ops else "]"),
                              "builder = builder.to_edge_transform_and_lower(partitioners)"])


STAGE = Stage("lower", run, DESCRIPTION, EXPLANATION, reads=READS, mutates_input=True,
              remedy=Remedy("try backend.xnnpack.extended_ops=False to delegate the quantized linears only"))
