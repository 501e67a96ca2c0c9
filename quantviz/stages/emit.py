"""emit: to_executorch: out variants, memory planning, and the .pte bytes."""
from __future__ import annotations

import copy

from quantviz.backends import backend_of
from quantviz.config import PipelineConfig
from quantviz.known_issues import runtime_preflight
from quantviz.lowering import method_order
from quantviz.model_spec import ModelSpec
from quantviz.stages.base import Remedy, Stage, StageContext, StageOutput

DESCRIPTION = "to_executorch: out variants, memory planning, .pte bytes"
EXPLANATION = (
    'to_executorch turns every functional op into its out variant, plans memory, and serialises the '
    'program to the .pte flatbuffer the runtime loads.'
)


def run(ctx: StageContext) -> StageOutput:
    import executorch.kernels.quantized  # noqa: F401  needed for programs with quantize/dequantize ops
    from executorch.exir import ExecutorchBackendConfig

    # to_executorch rewrites the program it is given (out variants), and the fuse stage's program may be the
    # delegate stage's own object (transform returns it unchanged when nothing fused): work on a copy
    program = copy.deepcopy(ctx.previous()).to_executorch(ExecutorchBackendConfig())
    size = len(program.buffer)
    methods = method_order(program)
    notes = [f".pte is {size} bytes"]
    if methods != ["forward"]:
        notes.append(f"the .pte holds {len(methods)} methods: {', '.join(methods)} (module.run_method(name, "
                     "inputs) runs each; this page shows forward's graph)")
    return StageOutput(program, calls=["et_program = edge.to_executorch(ExecutorchBackendConfig())",
                                       "open('model.pte', 'wb').write(et_program.buffer)"],
                       notes=notes, metrics={"pte_bytes": size, **({"methods": len(methods)} if len(methods) > 1 else {})})


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    import executorch.kernels.quantized  # noqa: F401  the quantized_decomposed out variants to_executorch needs

    state["blocked"] = runtime_preflight(state["lowered"])  # now: to_executorch rewrites the program in place
    if backend_of(config).numbers == "reference-model":  # the reference model runs the edge program, kept as it is
        state["edge"] = copy.deepcopy(state["lowered"])
    state["program"] = state["lowered"].to_executorch()


STAGE = Stage(
    "emit", run, DESCRIPTION, EXPLANATION, reads=(), overlay="fused_vs_runtime_sqnr_db",
    remedy=Remedy("try --fusion none or --partitioner none to find the op that does not lower",
                  ({"fusion": "none"}, {"partitioner": "none"})),
    bare=bare)
