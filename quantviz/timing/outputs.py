"""What ``quantviz run --out DIR`` writes for timing: summary.json's ``latency``, ``latency.json`` (every place),
and the files a device run needs to be read back (``etrecord.bin``, ``inputs.pt``).

Example::

    timing, latency = measure_for_summary(pipe, repeat=5)
    latency["total"]["median_ms"]           # or latency == {"available": False, "reason": "..."}
    write_device_files(pipe, Path("out"))   # ['etrecord.bin', 'inputs.pt']
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from quantviz.pipeline_view import PipelineView
from quantviz.timing.measure import NotTimed, PipelineTiming, time_pipeline

ETRECORD = "etrecord.bin"
INPUTS = "inputs.pt"


def measure_for_summary(pipe: PipelineView, repeat: int, threads: int | None = None,
                        with_float: bool = True) -> tuple[PipelineTiming | None, dict[str, Any]]:
    """Time the pipeline's program (``repeat`` warm runs); the timing (None when not timed) and summary.json's
    ``latency``: the report's ``to_dict()``, or ``{"available": False, "reason"}``."""
    if repeat <= 0:
        return None, {"available": False, "reason": "timing off (--repeat 0)"}
    run = pipe.results.get("run")
    if run is None or not run.ok:
        return None, {"available": False, "reason": "the run stage did not finish: nothing timed"}
    try:
        timing = time_pipeline(pipe, repeat=repeat, threads=threads, with_float=with_float)
    except NotTimed as why:
        return None, {"available": False, "reason": str(why)}
    data = {"available": True, **timing.report.to_dict()}
    if timing.float_error:
        data["float_error"] = timing.float_error
    return timing, data


def write_latency(timing: PipelineTiming, out: Path) -> Path:
    """``latency.json``: every place (not only the top ten), the delegates and the float comparison."""
    path = out / "latency.json"
    path.write_text(json.dumps(timing.report.to_dict(top=len(timing.report.places)), indent=1))
    return path


def write_latency_graph(pipe: PipelineView, timing: PipelineTiming, out: Path, svg: bool = True) -> list[str]:
    """``stages/NN_<lowered>.latency.dot`` (and ``.svg`` with `dot`): the lowered stage's graph with the latency
    overlay; the names written."""
    from quantviz.outputs import stage_file_stem
    from quantviz.render.dot import to_dot
    from quantviz.render.svg import dot_available, dot_to_svg
    from quantviz.stage_views import stage_view
    from quantviz.timing.overlay import latency_view

    stage = pipe.role("lowered")
    graph = pipe.graph(stage) if stage else None
    if graph is None:
        return []
    stem = f"stages/{stage_file_stem(pipe, stage)}.latency"
    dot = to_dot(graph, latency_view(timing, stage_view(pipe, stage)))
    (out / f"{stem}.dot").write_text(dot)
    written = [f"{stem}.dot"]
    if svg and dot_available():
        (out / f"{stem}.svg").write_text(dot_to_svg(dot) or "")
        written.append(f"{stem}.svg")
    return written


def write_device_files(pipe: PipelineView, out: Path) -> list[str]:
    """``etrecord.bin`` (the lowered program and the .pte's debug-handle and delegate maps) and ``inputs.pt`` (the
    example inputs as the runtime takes them, flattened, to replay the program on a device); the names written
    (no ETRecord before the emit stage)."""
    import torch
    from executorch.devtools import generate_etrecord

    program_stage, lowered_stage = pipe.role("program"), pipe.role("lowered")
    program = pipe.artifact(program_stage) if program_stage else None
    lowered = pipe.artifact(lowered_stage) if lowered_stage else None
    written = []
    if program is not None and lowered is not None and hasattr(program, "buffer"):
        try:
            generate_etrecord(str(out / ETRECORD), copy.deepcopy(lowered), program)
            written.append(ETRECORD)
        except Exception as exc:  # noqa: BLE001 - the run's outputs stand without it; say why it is missing
            (out / ETRECORD).unlink(missing_ok=True)
            written.append(f"(no {ETRECORD}: generate_etrecord failed: {type(exc).__name__}: "
                           f"{(str(exc).splitlines() or [''])[0][:160]})")
    from quantviz.timing.measure import runtime_inputs

    torch.save(runtime_inputs(pipe.spec.example), out / INPUTS)  # flat: what the runtime's forward takes
    written.append(INPUTS)
    return written


def write_device_dir(pipe: PipelineView, out: Path, timing: PipelineTiming | None,
                     latency: dict[str, Any]) -> Path:
    """Everything ``quantviz device`` reads, as ``quantviz run --out`` writes it: ``summary.json`` (with
    ``latency``), the stage graphs (no SVG, no Model Explorer files), ``model.pte``, ``etrecord.bin``,
    ``inputs.pt`` and (when timed) ``latency.json``; ``out``. For faces that hold a finished pipeline (the app)::

        timing, latency = measure_for_summary(pipe, repeat=5)
        read_device_run(write_device_dir(pipe, Path(d), timing, latency), Path("run.etdp"))
    """
    from quantviz.outputs import write_outputs

    out.mkdir(parents=True, exist_ok=True)
    write_outputs(pipe, out, svg=False, model_explorer=False, extra={"latency": latency})
    write_device_files(pipe, out)
    if timing is not None:
        write_latency(timing, out)
    return out
