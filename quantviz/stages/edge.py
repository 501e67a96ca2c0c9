"""edge: to_edge (``edge_fx.py``: after the fx reference model's two weight passes), duplicating shared dequantize nodes so each quantized op owns its inputs."""
from __future__ import annotations

from quantviz.backends import backend_name
from quantviz.config import PipelineConfig
from quantviz.lowering import calls as lowering_calls
from quantviz.lowering import compile_config, edge_program, graph_ops, keeps_ops_whole, partitioner_for
from quantviz.lowering import partitioner_key, partitioner_name, transform_passes
from quantviz.lowering_progress import lowering_progress
from quantviz.model_spec import ModelSpec
from quantviz.stages.base import Remedy, Stage, StageContext, StageOutput

DESCRIPTION = ("to_edge (Edge dialect; with a partitioner, to_edge_transform_and_lower's first step): int8 weights "
               "folded, DuplicateDequantNodePass when a dequantize is shared")
EXPLANATION = (
    "to_edge converts the program to ExecuTorch's Edge dialect (with a partitioner and the default lowering, "
    "to_edge_transform_and_lower's first step, which keeps the ops the backend matches whole). quantviz folds "
    "weight quantization into "
    'int8 constants and, where one dequantize feeds several ops, duplicates it so each pattern owns its '
    'inputs.'
)


def shared_dequants(ep) -> list[str]:
    """Names of dequantize nodes used by more than one op: patterns cannot each own them."""
    return [n.name for n in ep.graph.nodes
            if n.op == "call_function" and "dequantize" in str(n.target) and len(n.users) > 1]


def run(ctx: StageContext) -> StageOutput:
    methods = ctx.previous_methods()  # the model's other methods: lowered together with forward
    return to_edge(ctx, {"forward": ctx.previous(), **methods} if methods else ctx.previous())


def to_edge(ctx: StageContext, ep, calls: list[str] | None = None, folded: int = 0,
            scalarised: int = 0) -> StageOutput:
    """The captured program ``ep`` in the Edge dialect (a dict of them, method name -> program, for a model with
    more methods: one EdgeProgramManager holds them all); ``calls``: the ones a variant made before (edge_fx's
    passes), ``folded``/``scalarised``: what they changed."""
    shared = shared_dequants(ep["forward"] if isinstance(ep, dict) else ep)
    choice = partitioner_for(ctx.config) if keeps_ops_whole(ctx.config) else None
    with lowering_progress(ctx.progress, [choice.partitioner] if choice else []):
        edge = edge_program(ep, ctx.config, choice.partitioner if choice else None)
    calls = [*(calls or []), *lowering_calls(ctx.config, "edge")]
    notes = []
    if keeps_ops_whole(ctx.config):
        notes.append(f"to_edge_transform_and_lower, first step: edge dialect with the {partitioner_name(ctx.config)} "
                     "partitioner's ops kept whole (the delegate stage partitions and lowers)")
    if isinstance(ep, dict):
        notes.append(f"{len(ep)} methods in one edge program manager: {', '.join(ep)} (this page shows forward's "
                     "graph)")
    if folded:
        notes.append(f"fold_weight_quantize: {folded} weight quantize op(s) folded into int8 constants")
    if scalarised:
        notes.append(f"scalar_qparams: {scalarised} q/dq op(s) given scalar scale/zero point")
    mode = ctx.config.duplicate_dequant
    # auto: duplicate for fusion, but not inside to_edge_transform_and_lower, which does not (its partitioner
    # groups shared dequantizes itself); "on" forces it there too.
    if mode == "on" or (mode == "auto" and shared and not keeps_ops_whole(ctx.config)):
        from executorch.exir.backend.canonical_partitioners.duplicate_dequant_node_pass import (
            DuplicateDequantNodePass,
        )

        edge = edge.transform([DuplicateDequantNodePass()])
        calls += ["from executorch.exir.backend.canonical_partitioners.duplicate_dequant_node_pass import "
                  "DuplicateDequantNodePass", "edge = edge.transform([DuplicateDequantNodePass()])"]
        notes.append(f"DuplicateDequantNodePass: {len(shared)} shared dequantize node(s) duplicated "
                     f"({', '.join(shared[:5])}{'…' if len(shared) > 5 else ''})")
    elif shared:
        why = "duplicate_dequant=off" if mode == "off" else \
            "to_edge_transform_and_lower does not duplicate them; --duplicate-dequant on forces it"
        notes.append(f"{len(shared)} dequantize node(s) are shared by several ops and were left shared ({why})")
    return StageOutput(edge, calls=calls, notes=notes, metrics={"shared_dequants": len(shared)})


def bare(spec: ModelSpec, config: PipelineConfig, state: dict) -> None:
    """``to_edge_transform_and_lower`` (or ``to_edge`` [+ ``to_backend``]): the edge and delegate stages in one."""
    from executorch.exir import to_edge, to_edge_transform_and_lower

    choice = partitioner_for(config)
    if choice is None:
        state["lowered"] = to_edge(state["aten"], compile_config=compile_config(config))
    elif config.lowering == "transform_and_lower":
        cc = compile_config(config)
        state["lowered"] = to_edge_transform_and_lower(state["aten"], partitioner=[choice.partitioner],
                                                       compile_config=cc,
                                                       transform_passes=transform_passes(config, cc) or None)
    else:
        state["lowered"] = to_edge(state["aten"], compile_config=compile_config(config)).to_backend(
            choice.partitioner)
    state["lowered_ops"] = graph_ops(state["lowered"])  # now: to_executorch rewrites the program in place


def reads_when(config: PipelineConfig) -> tuple[str, ...]:
    """Under transform_and_lower the partitioner decides which ops the edge program keeps whole."""
    return ("partitioner", "delegate_granularity", "backend") if config.lowering == "transform_and_lower" else ()


def key(config: PipelineConfig) -> tuple:
    lowering = partitioner_key(config) if keeps_ops_whole(config) else (backend_name(config),)
    return config.duplicate_dequant, config.lowering, lowering


STAGE = Stage(
    "edge", run, DESCRIPTION, EXPLANATION, reads=("duplicate_dequant", "lowering"), reads_when=reads_when,
    key=key, mutates_input=True,  # folds weights into the captured program
    remedy=Remedy("try --duplicate-dequant off", ({"duplicate_dequant": "off"},)),
    bare=bare)
