"""run (export_llm): load the .pte in the ExecuTorch runtime and run decode steps with the model's own inputs,
``(tokens, {"input_pos": ...})``: token by token from position 0, the KV cache kept in the program's mutable
buffers between calls. The float model (before the source transforms) and the exported, quantized module get the
same steps; their logits are compared at every step."""
from __future__ import annotations

import torch

from quantviz.data import EvaluationData
from quantviz.measure.metrics import sqnr_db
from quantviz.measure.verdict import judge
from quantviz.native_stderr import capture_native_stderr
from quantviz.runtime import first_output, load_program
from quantviz.stages.base import Remedy, Stage, StageContext, StageOutput
from quantviz.stages.llm_source import READS
from quantviz.stages.run import RuntimeRun

DESCRIPTION = "export_llm: decode steps in the ExecuTorch runtime with (tokens, {'input_pos': ...}), KV cache kept"
EXPLANATION = (
    "Loads the .pte in ExecuTorch's runtime and runs decode steps as a runner does: one token a call with its "
    "position, the KV cache kept in the program's mutable buffers. The float model and the exported quantized "
    "module run the same steps, and their logits are compared."
)
DECODE_STEPS = 4
SEED = 1


def decode_inputs(example: tuple, steps: int, vocab: int, dynamic: bool) -> list[tuple]:
    """A prefill and ``steps - 1`` decode steps shaped like ``example`` (``(tokens (1, n), {"input_pos": (1,)})``):
    the example's tokens at position 0, then seeded token ids one at a time (``dynamic``: the program takes any
    sequence length; else chunks of the example's length) at the positions that follow. Without a dict (no KV
    cache) the example itself ``steps`` times."""
    if len(example) < 2 or not isinstance(example[1], dict):
        return [tuple(example)] * steps
    gen = torch.Generator().manual_seed(SEED)
    tokens, options = example[0], example[1]
    out, pos = [(tokens, options)], tokens.shape[1]
    for _ in range(steps - 1):
        shape = (tokens.shape[0], 1) if dynamic else tuple(tokens.shape)
        ids = torch.randint(0, vocab, shape, generator=gen, dtype=tokens.dtype)
        out.append((ids, {k: torch.full_like(v, pos) if k == "input_pos" else v for k, v in options.items()}))
        pos += shape[1]
    return out


def describe_inputs(inputs: tuple) -> str:
    """``(tokens (1, 1), {'input_pos': [3]})``."""
    parts = [f"tokens {tuple(inputs[0].shape)}"]
    if len(inputs) > 1 and isinstance(inputs[1], dict):
        parts.append("{" + ", ".join(f"{k!r}: {v.tolist()}" for k, v in inputs[1].items()) + "}")
    return "(" + ", ".join(parts) + ")"


def flat(inputs: tuple) -> tuple:
    """The runtime's flat input list: ``(tokens, {"input_pos": p})`` -> ``(tokens, p)``."""
    return tuple(torch.utils._pytree.tree_leaves(inputs))


def run(ctx: StageContext) -> StageOutput:
    program = ctx.previous()
    manager = ctx.artifact("source_transform")
    vocab = next((m.num_embeddings for m in ctx.spec.model.modules() if isinstance(m, torch.nn.Embedding)), 2)
    steps = decode_inputs(ctx.spec.example_inputs, DECODE_STEPS, vocab,
                          manager.quantviz_llm_config.model.enable_dynamic_shape)
    reference = manager.pre_autograd_graph_module
    log: list[str] = []
    buffer = program.buffer
    with capture_native_stderr(log):
        module = load_program(buffer)
        runtime = [first_output(module.forward(flat(s))).clone() for s in steps]
    with torch.no_grad():
        floats = [first_output(ctx.spec.model(*s)) for s in steps]
        refs = [first_output(reference(*s)) for s in steps]
    f, r, rt = (torch.cat([o.flatten() for o in outs]) for outs in (floats, refs, runtime))
    agree = float(sum(int(a.argmax(-1).flatten()[-1] == b.argmax(-1).flatten()[-1])
                      for a, b in zip(floats, runtime)) / len(steps))
    numerics = {"float_vs_reference_sqnr_db": sqnr_db(f, r), "float_vs_runtime_sqnr_db": sqnr_db(f, rt),
                "reference_vs_runtime_sqnr_db": sqnr_db(r, rt), "decode_steps": float(len(steps)),
                "runtime_top1_agreement": agree}
    notes = [f"{len(steps)} call(s) of forward in the ExecuTorch runtime, the KV cache kept between them: "
             + "; ".join(describe_inputs(s) for s in steps),
             f"SQNR float vs runtime {numerics['float_vs_runtime_sqnr_db']:.1f} dB, reference vs runtime "
             f"{numerics['reference_vs_runtime_sqnr_db']:.1f} dB; next token agrees with float at {agree:.0%} "
             "of the steps (random weights: SQNR, not agreement, is the figure to read)"]
    verdict = judge(f, r, rt, None)
    data = EvaluationData(list(steps), [None] * len(steps), "synthetic held-out",
                          drawn=[describe_inputs(x) for x in steps])
    result = RuntimeRun(floats, refs, runtime, numerics, log, verdict, batches=list(steps),
                        runtime_leaves=[[t] for t in runtime], data=data)
    notes.insert(1, result.agreement())
    return StageOutput(result, graph_source=False, metrics=numerics, notes=notes,
                       calls=["module = _load_for_executorch_from_buffer(builder.export_program.buffer)",
                              "logits = module.forward((prompt, torch.tensor([0])))  # prefill",
                              "logits = module.forward((next_token, torch.tensor([len(prompt)])))  # a decode step"])


STAGE = Stage("run", run, DESCRIPTION, EXPLANATION, reads=READS, page_runs_torch=True,
              remedy=Remedy("the runtime log on this page names what it rejected"))
