"""Write a pipeline's results to a folder: summary.json, one graph JSON per stage, model.pte.

The summary.json contract (other tools read it)::

    {"model", "flow", "ok", "config": {...},
     "data": {"source", "batches", "labelled", "description", "drawn"},   # what "numerics" was measured on
     "numbers_from": "the ExecuTorch runtime" | "the TOSA reference model (...)" | "no runtime for ... here",
     "stages": [{"name", "ok", "seconds", "timed_by", "nodes", "kinds", "patterns", "error"}],
     "absent": {"calibrate": "why this flow has no such stage", ...},
     "artifacts": {"pte": "model.pte", "graphs": {...}, "model_explorer": ["model_explorer/01_trace.json", ...]},
     "numerics": {...},   # language models add float/reference/runtime_perplexity, ..._top1_agreement, ...
     "language_model": null | {"text", "positions", "perplexity", "next_token_accuracy",
                               "top1_agreement_with_float", "generation": {"steps", "tokens", "text",
                                                                           "first_divergent_step"}},
     "methods": null | {"forward": {"batches", "input_shapes", "output_shapes", "float_vs_runtime_sqnr_db",
                                    "reference_vs_runtime_sqnr_db", "float_vs_reference_sqnr_db"}, "decode": {...}},
     "untraceable": [{"action", "module", "module_class", "function", "file", "line", "code", "reason", "callers"}],
     "qat_qparams": null | {"convert", "agree", "max_scale_rel_diff", "max_zero_point_diff", "values_differ",
                            "mismatched": [node, ...], "checks": [{"node", "tensor", "quantizes", "fake_quantizer",
                            "training", "export", "scales", "max_scale_rel_diff", "max_zero_point_diff", "values",
                            "values_differ", "problem", "note", "mismatch"}]},   # --flow qat / qat_pt2e
     "latency": {"available", "measured": {"runs", "warmup", "threads", "machine"}, "total", "float_total",
                 "speedup_vs_float", "top": [ten places], "delegates", "by_kind", "patterns", "float_vs_quantized",
                 "slower_than_float"}}   # `quantviz run` only; {"available": False, "reason"} when not timed

``untraceable`` lists what the fx trace stage wrapped ("wrap": a helper function kept as a leaf call) or skipped
("skip": a module kept float) with ``skip_untraceable``; empty otherwise.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from quantviz.data import evaluation_data
from quantviz.interop.model_explorer import FOLDER, write_model_explorer
from quantviz.pipeline import Pipeline
from quantviz.render.dot import to_dot
from quantviz.render.svg import dot_available, dot_to_svg
from quantviz.stage_views import stage_view


def stage_file_stem(pipe: Pipeline, stage: str) -> str:
    """``01_trace`` ... ``10_run``: the stage's number on the flow's rail (absent stages keep their numbers)."""
    return f"{pipe.flow.number(stage):02d}_{stage}"


def summary(pipe: Pipeline) -> dict[str, Any]:
    run = pipe.result_of("runtime")
    data = run.artifact.data if run is not None and run.ok and run.artifact.data is not None else \
        evaluation_data(pipe.spec, pipe.config, pipe.flow.calibrates(pipe.config))
    return {
        "model": pipe.spec.name,
        "flow": pipe.config.flow,
        "ok": pipe.ok,
        "config": pipe.config.to_dict(),
        "data": data.to_dict(),
        # what computed "numerics": the ExecuTorch runtime, a backend's reference model, or why nothing could here
        "numbers_from": (run.artifact.not_run or run.artifact.executed_by) if run is not None and run.ok else "",
        "stages": [r.summary() for r in pipe.results.values()],
        "absent": dict(pipe.flow.absent),
        "artifacts": {},
        "numerics": pipe.numerics().to_dict(),
        # a language model's perplexity, agreement and generation per level (None for other models)
        "language_model": run.artifact.language.to_dict() if run is not None and run.ok
        and run.artifact.language is not None else None,
        "untraceable": untraceable_sites(pipe),
        # a QAT flow's convert: each fake quantizer's qparams in training against export's (None for other flows)
        "qat_qparams": qat_qparams(pipe),
        # a model shipped with more methods in one .pte (ModelSpec.methods): per method, its batches' shapes and
        # SQNR float vs runtime and reference vs runtime, forward first (None for one-method models)
        "methods": {m.name: m.to_dict() for m in run.artifact.methods} if run is not None and run.ok
        and run.artifact.methods else None,
    }


def qat_qparams(pipe: Pipeline) -> dict[str, Any] | None:
    """The QAT convert stage's comparison of training's and export's qparams (``quantviz.stages.qat_qparams``)."""
    found = next((r.diagnostics.qat_qparams for r in pipe.results.values()
                  if r.ok and r.diagnostics.qat_qparams is not None), None)
    return found.to_dict() if found is not None else None


def untraceable_sites(pipe: Pipeline) -> list[dict[str, Any]]:
    """The trace stage's ``UntraceableSite`` records (fx flow, ``skip_untraceable``), as dicts."""
    trace = pipe.result_of("float_graph")
    return [site.to_dict() for site in trace.diagnostics.untraceable] if trace else []


def write_outputs(pipe: Pipeline, out: Path, svg: bool = True, model_explorer: bool = True,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write everything the pipeline produced under ``out``; returns the summary written.

    Per stage: ``stages/NN_<stage>.json`` (graph model), ``.dot`` (default view) and, with ``svg`` and the
    `dot` binary, ``.svg``; with ``model_explorer``, ``model_explorer/NN_<stage>.json`` (see
    ``write_explorer_graphs``). ``extra``: more top-level summary keys (``latency``, from ``quantviz.timing``).
    """

    out.mkdir(parents=True, exist_ok=True)
    (out / "stages").mkdir(exist_ok=True)
    data = {**summary(pipe), **(extra or {})}
    graphs = {}
    for name, result in pipe.results.items():
        if result.graph is None:
            continue
        stem = f"stages/{stage_file_stem(pipe, name)}"
        (out / f"{stem}.json").write_text(json.dumps(result.graph.to_dict(), indent=1))
        dot = to_dot(result.graph, stage_view(pipe, name))
        (out / f"{stem}.dot").write_text(dot)
        if svg and dot_available():
            (out / f"{stem}.svg").write_text(dot_to_svg(dot) or "")
        graphs[name] = f"{stem}.json"
    data["artifacts"]["graphs"] = graphs
    tables = {}
    for name, result in pipe.results.items():  # stages without a graph that show a table (quantize's weights)
        if result.table:
            stem = f"stages/{stage_file_stem(pipe, name)}"
            rows = [r.to_dict() for r in result.table]
            (out / f"{stem}.table.json").write_text(json.dumps(rows, indent=1))
            with (out / f"{stem}.table.csv").open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
            tables[name] = f"{stem}.table.csv"
    data["artifacts"]["tables"] = tables
    if model_explorer:
        data["artifacts"]["model_explorer"] = write_explorer_graphs(pipe, out)
    pte = pipe.pte_bytes()
    if pte is not None:
        (out / "model.pte").write_bytes(pte)
        data["artifacts"]["pte"] = "model.pte"
    # SQNR of identical outputs is +inf; JSON has no inf, Python's json writes it as Infinity and reads it back
    (out / "summary.json").write_text(json.dumps(data, indent=2))
    return data


def write_explorer_graphs(pipe: Pipeline, out: Path) -> list[str]:
    """``out/model_explorer/NN_<stage>.json`` (Model Explorer graphs with pattern fates) and node-data files,
    relative to ``out``. Never fails the run: without the ``explorer`` extra, or when building them fails,
    ``out/model_explorer/MISSING.txt`` says why and nothing else is written.

    Example: ``write_explorer_graphs(pipe, Path("out/digits"))[0]  # 'model_explorer/01_trace.json'``
    """

    try:
        return [str(p.relative_to(out)) for p in write_model_explorer(pipe, out)]
    except Exception as exc:  # noqa: BLE001 - an optional export: note it and keep the run's outputs
        (out / FOLDER).mkdir(parents=True, exist_ok=True)
        (out / FOLDER / "MISSING.txt").write_text(f"Model Explorer graphs were not written: {exc!r}\n")
        return []
