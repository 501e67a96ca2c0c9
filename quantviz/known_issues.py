"""Turn failures raised inside torch/executorch into a StageError with a cause and a hint.

Known limitations of the pinned versions get words a user understands; anything else keeps
the library's message, with the stage name and a generic hint added.
"""
from __future__ import annotations

import re
import traceback
from dataclasses import dataclass

from quantviz.errors import StageError


@dataclass(frozen=True)
class KnownIssue:
    stage: str
    pattern: str  # regex on the exception text
    message: str  # may use {match} groups
    hint: str


KNOWN_ISSUES: tuple[KnownIssue, ...] = (
    KnownIssue(
        "emit", r"Missing out variants: \{(?P<ops>[^}]*)\}",
        "to_executorch found no out-variant kernel for {ops}: ExecuTorch's QuantFusionPass fused a pattern into "
        "an operator that executorch 1.5.1 cannot run (quantized add+relu fuses to quantized_decomposed::add_relu, "
        "which has no .out kernel)",
        "use --fusion quantviz (quantviz's own add_relu kernel, which has one) or --fusion none (the pattern then "
        "runs as dequantize, float ops, quantize), or a partitioner that takes add+relu (--partitioner demo or "
        "xnnpack with --flow pt2e)"),
)

GENERIC_HINTS = {
    "trace": "check that the model runs eagerly on its example inputs; skip untraceable modules with --skip-module",
    "prepare": "try --flow pt2e or --flow fx, or skip the module named in the message with --skip-module",
    "calibrate": "check the calibration data: shapes and dtypes must match the example inputs",
    "convert": "try the other flow (--flow fx / --flow pt2e) or --mode static",
    "capture": "torch.export could not capture the reference model; try --flow pt2e",
    "edge": "try --duplicate-dequant off",
    "delegate": "try --partitioner none to see the graph without delegation",
    "fuse": "try --fusion none, or the other patterns (--fusion executorch or --fusion quantviz)",
    "emit": "try --fusion none or --partitioner none to find the op that does not lower",
    "run": "try --partitioner none or --fusion none to find what the runtime rejects",
}


def explain(stage: str, exc: BaseException) -> StageError:
    """The StageError for an exception a stage raised."""
    if isinstance(exc, StageError):
        return exc
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    details = "".join(traceback.format_exception(exc))
    for issue in KNOWN_ISSUES:
        if issue.stage != stage:
            continue
        m = re.search(issue.pattern, text)
        if m:
            return StageError(stage, issue.message.format(text=first, **m.groupdict()), issue.hint, details)
    message = f"{type(exc).__name__}: {first[:500]}" if text else f"{type(exc).__name__} (the library gave no message)"
    return StageError(stage, message, GENERIC_HINTS.get(stage, ""), details)


def runtime_preflight(edge) -> StageError | None:
    """A StageError for programs known to *abort* the ExecuTorch runtime process (no exception to catch), found
    before the program is loaded; None when none is known.

    executorch 1.5.1's ``dequantize_per_channel`` kernel aborts on float zero points, which the fx flow's
    embedding weights (``float_qparams_weight_only_qconfig``) carry; only ExecuTorch's QuantFusionPass removes
    that dequantize (it fuses embeddings into ``embedding_byte``).
    """
    if edge is None or not hasattr(edge, "exported_program"):
        return None
    ep = edge.exported_program()
    values = {**ep.state_dict, **ep.constants}
    sig = ep.graph_signature
    names = {**sig.inputs_to_parameters, **sig.inputs_to_buffers, **sig.inputs_to_lifted_tensor_constants}
    for node in ep.graph.nodes:
        if node.op != "call_function" or "dequantize_per_channel" not in str(node.target):
            continue
        zp = node.args[2] if len(node.args) > 2 else None
        tensor = values.get(names.get(getattr(zp, "name", ""), ""))
        if tensor is not None and tensor.is_floating_point():
            return StageError(
                "run", f"{node.name} dequantizes per channel with float zero points (embedding weights quantized "
                       "with float qparams); executorch 1.5.1's dequantize_per_channel kernel aborts the process on "
                       "them, so the program was not run",
                "use --fusion executorch or --fusion both: QuantFusionPass fuses the embedding into "
                "quantized_decomposed::embedding_byte, which takes float zero points (or use --flow pt2e)")
    return None
