"""export (export_llm): ``LLMEdgeManager.export()`` (torch.export with the model's example inputs and kwargs,
then ``run_decompositions({})``) and ``run_canonical_optimizations()``; the graph is the exported module, its KV
cache as mutable buffers updated by ``llama::update_cache`` (or ``aten.index_put_``)."""
from __future__ import annotations

from quantviz.stages.base import Remedy, Stage, StageContext, StageOutput
from quantviz.stages.llm_source import READS

DESCRIPTION = "export_llm: torch.export of the transformed model (KV cache as mutable buffers)"
EXPLANATION = (
    "LLMEdgeManager.export() runs torch.export with the model's example inputs (tokens and, with a KV cache, "
    "{'input_pos': ...}), then export_llm's canonical optimizations. The KV cache becomes mutable buffers that the "
    "graph updates in place."
)


def mutable_buffers(gm) -> list[str]:
    """The buffers the graph writes (the KV cache): targets of in-place update ops and copy_ back to a buffer."""
    out = []
    for n in gm.graph.nodes:
        t = str(n.target)
        if n.op == "call_function" and ("update_cache" in t or "index_put_" in t or "copy_" in t):
            dest = n.args[1] if "update_cache" in t and len(n.args) > 1 else n.args[0]
            if getattr(dest, "op", "") == "get_attr":
                out.append(str(dest.target))
    return sorted(set(out))


def run(ctx: StageContext) -> StageOutput:
    manager = ctx.previous()
    manager.export()
    manager.run_canonical_optimizations()
    gm = manager.pre_autograd_graph_module
    cache = mutable_buffers(gm)
    ops = sorted({str(n.target) for n in gm.graph.nodes if n.op == "call_function" and "llama" in str(n.target)})
    notes = [f"mutable buffers (KV cache) written by the graph: {len(cache)}"
             + (f" ({', '.join(cache[:4])}{', ...' if len(cache) > 4 else ''})" if cache else ""),
             "custom ops: " + (", ".join(ops) or "none")]
    return StageOutput(manager, graph_source=gm, notes=notes, metrics={"mutable_buffers": len(cache)},
                       calls=["builder.export()", "builder.run_canonical_optimizations()"])


STAGE = Stage("export", run, DESCRIPTION, EXPLANATION, reads=READS, mutates_input=True,
              remedy=Remedy("export_llm's export failed: check export.max_seq_length and model.enable_dynamic_shape"))
