"""to_executorch (export_llm): ``LLMEdgeManager.to_executorch(passes=...)`` with the passes export_llm adds for
the configuration; the artifact is the ExecutorchProgramManager whose ``buffer`` is the .pte export_llm writes."""
from __future__ import annotations

from quantviz.stages.base import Remedy, Stage, StageContext, StageOutput
from quantviz.stages.llm_source import READS

DESCRIPTION = "export_llm: to_executorch (ConvertToLinearPass, memory planning with mutable buffers), the .pte"
EXPLANATION = (
    "export_llm's to_executorch: ConvertToLinearPass, quantized-op fusion and constant propagation, memory "
    "planning (graph inputs not allocated), and the .pte bytes: the same bytes export_llm writes."
)


def additional_passes(llm) -> list:
    """The passes ``_export_llama`` gives to_executorch for this configuration."""
    from executorch.examples.models.llama.export_llama_lib import TORCHTUNE_DEFINED_MODELS
    from executorch.exir.passes.init_mutable_pass import InitializedMutableBufferPass

    passes = []
    if llm.base.model_class.value in TORCHTUNE_DEFINED_MODELS:
        passes.append(InitializedMutableBufferPass(["kv_cache_pos"]))
    if llm.model.use_attention_sink:
        passes.append(InitializedMutableBufferPass(["cache_positions"]))
    return passes


def run(ctx: StageContext) -> StageOutput:
    import executorch.kernels.quantized  # noqa: F401  the quantized_decomposed out variants

    manager = ctx.artifact("source_transform")
    manager.to_executorch(passes=additional_passes(manager.quantviz_llm_config))
    program = manager.export_program
    size = len(program.buffer)
    return StageOutput(program, metrics={"pte_bytes": size}, notes=[f".pte is {size:,} bytes"],
                       calls=["builder = builder.to_executorch(passes=additional_passes(llm_config))",
                              "open('model.pte', 'wb').write(builder.export_program.buffer)"])


STAGE = Stage("to_executorch", run, DESCRIPTION, EXPLANATION, reads=READS, mutates_input=True,
              remedy=Remedy("check the ops outside the delegates on the lower page"))
