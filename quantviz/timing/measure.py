"""Time a finished pipeline's program, and the float model lowered the same way, in this machine's runtime.

Example::

    pipe.run()
    timing = time_pipeline(pipe, repeat=10)
    timing.report.lines()[0]      # 'latency: 0.084 ms (0.078-0.091) per run; 10 warm runs (2 dropped), 2 threads, ...'
    timing.report.to_dict()       # summary.json's "latency"
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from quantviz.graph import GraphView, snapshot
from quantviz.pipeline_view import PipelineView
from quantviz.timing.latency import LatencyReport, float_side, latency_report
from quantviz.timing.place import Placement, place_events
from quantviz.timing.profile import Profile, profile_program
from quantviz.model_spec import as_batch, flat_inputs

DEFAULT_REPEAT = 10
DEFAULT_WARMUP = 2


class NotTimed(Exception):
    """Why the program cannot be timed here (no runtime for its backend, a stage failed): one line."""


@dataclass
class PipelineTiming:
    """The quantized program's latency report, and the pieces ``quantviz device`` and the ledger reuse."""

    report: LatencyReport
    placement: Placement
    float_profile: Profile | None
    float_error: str = ""        # why the float model could not be timed on the same backend ("" when it was)


def runtime_inputs(example_inputs: Any) -> tuple:
    """What the runtime's ``forward`` takes: the example inputs' tensors flattened (dicts, nested tuples; a
    ``Batch``'s keyword inputs after its positional ones), as ``quantviz.backends.execute`` feeds them."""
    return flat_inputs(example_inputs)


def handle_maps(program: Any) -> tuple[dict[int, list[int]], dict[int, dict]]:
    """The program's debug-handle map (instruction id -> debug handles) and delegate map, "forward" method."""
    handles = (getattr(program, "debug_handle_map", None) or {}).get("forward") or {}
    delegates = (getattr(program, "delegate_map", None) or {}).get("forward") or {}
    return dict(handles), dict(delegates)


def time_program(program: Any, graph: GraphView, batch: tuple, repeat: int, warmup: int,
                 threads: int | None) -> tuple[Profile, Placement]:
    """Profile an ExecuTorch program manager and place its events on ``graph`` (its program before to_executorch)."""
    profile, _ = profile_program(program.buffer, batch, repeat, warmup, threads)
    handles, delegates = handle_maps(program)
    return profile, place_events(profile, graph, handles, delegates)


def float_program(model: torch.nn.Module, example_inputs: Any, config: Any, dynamic_shapes: Any = None
                  ) -> tuple[Any, GraphView]:
    """The float model lowered to ``config``'s backend exactly as the quantized one (same partitioner, lowering);
    the ExecuTorch program and the graph of its program before to_executorch."""
    from quantviz.lowering import delegate, delegates, edge_program, partitioner_for

    b = as_batch(example_inputs)
    ep = torch.export.export(model, tuple(b.args), kwargs=dict(b.kwargs) or None, dynamic_shapes=dynamic_shapes,
                             strict=False)
    edge = edge_program(ep, config)
    if delegates(config):
        edge = delegate(edge, partitioner_for(config).partitioner, config.lowering)
    graph = snapshot(edge, "float")
    return copy.deepcopy(edge).to_executorch(), graph


def time_pipeline(pipe: PipelineView, repeat: int = DEFAULT_REPEAT, warmup: int = DEFAULT_WARMUP,
                  threads: int | None = None, with_float: bool = True) -> PipelineTiming:
    """Time the pipeline's .pte on its example inputs; with ``with_float``, also the float model lowered to the same
    backend. Raises :class:`NotTimed` when nothing can run the program here."""
    run = pipe.results.get("run")
    program_stage, lowered_stage = pipe.role("program"), pipe.role("lowered")
    program = pipe.artifact(program_stage) if program_stage else None
    graph = pipe.graph(lowered_stage) if lowered_stage else None
    if program is None or graph is None or not hasattr(program, "buffer"):
        raise NotTimed("no .pte to time: the flow did not reach its emit stage")
    if run is not None and run.ok and run.artifact.not_run:
        raise NotTimed(f"not timed: {run.artifact.not_run}")
    if run is not None and run.ok and run.artifact.executed_by != "the ExecuTorch runtime":
        raise NotTimed(f"not timed: {run.artifact.executed_by} computed the numbers, not ExecuTorch's runtime on "
                       "this machine")
    if pipe.config.uses_quantviz_kernels:
        from quantviz_kernels import load

        load()
    batch = runtime_inputs(pipe.spec.example)
    try:
        profile, placement = time_program(program, graph, batch, repeat, warmup, threads)
    except RuntimeError as exc:
        raise NotTimed(f"the runtime could not run the program with an ETDump: {str(exc).splitlines()[0]}") from None
    side, float_profile, error = None, None, ""
    if with_float:
        try:
            fprog, fgraph = float_program(pipe.spec.model, pipe.spec.example, pipe.config, pipe.spec.dynamic_shapes)
            float_profile, fplacement = time_program(fprog, fgraph, batch, repeat, warmup, threads)
            side = float_side(float_profile, fplacement)
        except Exception as exc:  # noqa: BLE001 - the float side is extra: say why it is missing, keep the rest
            error = f"the float model could not be lowered and timed the same way: {type(exc).__name__}: " + \
                (str(exc).splitlines() or [""])[0][:200]
    return PipelineTiming(latency_report(profile, placement, side), placement, float_profile, error)


def quick_latency(pipe: PipelineView, repeat: int = 10) -> tuple[float | None, str]:
    """The pipeline's .pte median run time here (ETDump, no float side) and its spread in words; (None, why) when
    nothing runs it here. For tables with one number a row (``backends``, ``sweep``)."""
    run = pipe.results.get("run")
    if run is None or not run.ok:
        return None, "not run"
    try:
        report = time_pipeline(pipe, repeat=repeat, with_float=False).report
    except NotTimed as why:
        return None, str(why)
    return round(report.total.median_ms, 5), f"{report.total.text()}, {report.profile.describe()}"
