"""Values inside delegates, read through ExecuTorch's intermediate-output taps.

A delegate that holds several patterns exposes only its inputs and outputs to the runtime's ETDump.
``executorch.devtools.intermediate_output_tap`` makes the values in between extra outputs of the program, without
backend changes: each chosen node's value goes through a ``tap.Tensor`` placeholder the partitioners do not take,
so the delegate returns it; after lowering, ``strip_taps_`` replaces the placeholders by identities. quantviz taps
the captured program's quantize nodes (each pattern's output, as int8), lowers the tapped program with the same
calls as the run (edge, the backend's partitioner; the fuse stage's quantviz kernels are not applied: values
outside delegates are read from the ETDump already) and runs it in the runtime, or, for a backend with a reference
model, there. The blame table takes a tapped value for every pattern whose runtime value the real program does not
expose (``runtime_source="tap"``), so its local error is that pattern's own even inside a delegate of many.

Tapping keeps a value alive past the op that made it, so a backend may partition the tapped program differently
(a fused pair split, a delegate cut in two): ``TapRun.partition_changed`` says so, with both programs' delegate
calls and the ops each leaves out.

Example::

    run = tap_runtime(pipe, pipe.spec.comparison_batches()[:1])
    run.available, run.taps, run.partition_changed     # (True, 45, False)
    run.values[0]["quantize_per_tensor_default_38"]      # the runtime's int8 value of that quantize, batch 0
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch

from quantviz.backends import backend_of
from quantviz.known_issues import runtime_preflight
from quantviz.pipeline_view import PipelineView
from quantviz.model_spec import flat_inputs

# the stage whose program is tapped: the captured q/dq program, before the edge dialect
TAPPED_STAGE = "capture"


@dataclass
class TapRun:
    """The tapped program, run on the blame table's batches (``NumericsReport.taps``)."""

    available: bool = False    # the tapped program ran and its tapped outputs were read
    reason: str = ""           # what ran the tapped program when available, else why there are no tapped values
    taps: int = 0              # quantize outputs tapped
    delegate_calls: int | None = None           # delegate calls of the tapped program
    delegate_calls_untapped: int | None = None  # ... and of the run's own program (the delegate stage's)
    left_out: tuple[str, ...] = ()              # ops the partitioner left out of the tapped program
    left_out_untapped: tuple[str, ...] = ()     # ... and of the run's own program
    # per batch: convert-graph quantize id -> the value the tapped program's runtime computed for it
    values: list[dict[str, torch.Tensor]] = field(default_factory=list, repr=False)

    @property
    def partition_changed(self) -> bool:
        """Tapping changed what the partitioner delegated (the calls, or the ops left out)."""
        return self.available and (self.delegate_calls != self.delegate_calls_untapped
                                   or self.left_out != self.left_out_untapped)

    def summary(self) -> str:
        """One line: ``"45 quantize output(s) tapped (ExecuTorch runtime); partitioning unchanged: 1 delegate
        call(s)"``, or why there are none."""
        if not self.available:
            return f"no tapped values: {self.reason}"
        if self.partition_changed:
            part = (f"tapping changed the partitioning: {self.delegate_calls} delegate call(s) instead of "
                    f"{self.delegate_calls_untapped}"
                    + (f"; left out {', '.join(self.left_out)} (untapped: {', '.join(self.left_out_untapped) or 'none'})"
                       if self.left_out != self.left_out_untapped else ""))
        else:
            part = f"partitioning unchanged: {self.delegate_calls} delegate call(s)"
        return f"{self.taps} quantize output(s) tapped ({self.reason}); {part}"

    def to_dict(self) -> dict[str, Any]:
        """numerics.json's ``taps`` entry (the values stay out)."""
        return {"available": self.available, "reason": self.reason, "taps": self.taps,
                "delegate_calls": {"tapped": self.delegate_calls, "untapped": self.delegate_calls_untapped},
                "left_out": {"tapped": list(self.left_out), "untapped": list(self.left_out_untapped)},
                "partition_changed": self.partition_changed}


def tap_runtime(pipe: PipelineView, batches: list[tuple]) -> TapRun:
    """Tap every quantize of the captured program, lower it as the run did, run it on ``batches``.

    Never raises for a program it cannot tap: the reason is in the returned ``TapRun``.
    """
    why = _why_not(pipe)
    if why:
        return TapRun(False, why)
    try:
        return _tap_and_run(pipe, batches)
    except Exception as exc:  # noqa: BLE001 - the devtools are new: the blame table goes on without taps
        return TapRun(False, f"the tapped program could not be lowered or run: {type(exc).__name__}: {exc}")


def _why_not(pipe: PipelineView) -> str:
    """Empty when the run's program can be tapped and run here, else why not."""
    from quantviz.lowering import delegates

    if TAPPED_STAGE not in pipe.results or not pipe.results[TAPPED_STAGE].ok:
        return f"this flow has no {TAPPED_STAGE} stage whose program can be tapped"
    if not delegates(pipe.config) or "delegate" not in pipe.results:
        return "nothing is delegated: every kernel's output is in the ETDump already"
    backend = backend_of(pipe.config)
    if backend.numbers not in ("runtime", "reference-model"):
        return backend.numbers_note or f"no runtime for {backend.name} on this machine"
    emit = pipe.results.get(pipe.role("program") or "")
    lowered = pipe.results.get(pipe.role("lowered") or "")
    if emit is None or not emit.ok or lowered is None or not lowered.ok:
        return "the run has no lowered program to compare the tapped one with"
    blocked = runtime_preflight(lowered.artifact)
    if blocked is not None:
        return blocked.message
    from quantviz.numerics.blame import patterns_per_call

    if max(patterns_per_call(pipe.results[pipe.role("reference")].graph, lowered.graph).values(), default=0) < 2:
        return "every delegate holds one pattern at most: the ETDump has each one's output already"
    return ""


def _tap_and_run(pipe: PipelineView, batches: list[tuple]) -> TapRun:
    from quantviz.lowering import graph_ops
    from quantviz.numerics.blame import carriers

    carry = carriers(pipe.results[pipe.role("reference")].graph, pipe.results[TAPPED_STAGE].graph)
    by_node = {node: q for q, node in carry.items()}
    chosen = {n.name for n in pipe.results[TAPPED_STAGE].artifact.graph.nodes if n.name in by_node and _is_quantize(n)}
    if not chosen:
        return TapRun(False, "the captured program has no per-tensor quantize output to tap")
    lowered, specs = _lower_tapped(pipe, chosen)
    calls, left = graph_ops(lowered)
    calls_before, left_before = graph_ops(pipe.result_of("delegated").artifact)
    outputs, runner = _run(pipe, lowered, batches)
    values = [{by_node[s.node_name]: out[s.output_index] for s in specs
               if s.output_index < len(out) and isinstance(out[s.output_index], torch.Tensor)} for out in outputs]
    return TapRun(True, runner, len(specs), calls, calls_before, left, left_before, values)


def _lower_tapped(pipe: PipelineView, chosen: set[str]) -> tuple[Any, list[Any]]:
    """The run's captured program with ``chosen`` nodes tapped, lowered with the run's calls, taps stripped."""
    from executorch.devtools.intermediate_output_tap import FULL_TENSOR, strip_taps_, tap_intermediate_outputs_

    from quantviz.lowering import delegate, edge_program, partitioner_for

    config = pipe.config
    ep, specs = tap_intermediate_outputs_(copy.deepcopy(pipe.results[TAPPED_STAGE].artifact),
                                          [(lambda n: n.name in chosen, FULL_TENSOR)])
    lowered = delegate(edge_program(ep, config), partitioner_for(config).partitioner, config.lowering)
    strip_taps_(lowered)
    return lowered, specs


def _is_quantize(node: Any) -> bool:
    target = str(node.target)
    return node.op == "call_function" and "quantize_per_tensor" in target and "dequantize" not in target


def _run(pipe: PipelineView, lowered: Any, batches: list[tuple]) -> tuple[list[list[Any]], str]:
    """The tapped program's flat outputs per batch, and what ran it."""
    backend = backend_of(pipe.config)
    if backend.numbers == "reference-model":
        from quantviz.backends.delegate_runs import run_with_delegates

        run = run_with_delegates(lowered, batches, backend.reference_dispatch, backend.reference_name)
        return run.outputs, backend.reference_name
    import executorch.kernels.quantized  # noqa: F401  the quantize/dequantize out variants
    from executorch.exir import ExecutorchBackendConfig
    from executorch.extension.pybindings.portable_lib import _load_for_executorch_from_buffer

    buffer = lowered.to_executorch(ExecutorchBackendConfig()).buffer  # held: the module reads it, not a copy
    module = _load_for_executorch_from_buffer(buffer)
    outputs = [list(module.forward(flat_inputs(b))) for b in batches]
    del module
    return outputs, "ExecuTorch runtime"
