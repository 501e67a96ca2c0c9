"""Write a pipeline's results to a folder: summary.json, one graph JSON per stage, model.pte.

The summary.json contract (other tools read it)::

    {"model", "flow", "ok", "stages": [{"name", "ok", "seconds", "nodes", "kinds", "patterns", "error"}],
     "artifacts": {"pte": "model.pte", ...}, "numerics": {...}}
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quantviz.config import STAGES
from quantviz.pipeline import Pipeline


def stage_file_stem(stage: str) -> str:
    """``01_trace`` ... ``10_run``."""
    return f"{STAGES.index(stage) + 1:02d}_{stage}"


def summary(pipe: Pipeline) -> dict[str, Any]:
    return {
        "model": pipe.spec.name,
        "flow": pipe.config.flow,
        "ok": pipe.ok,
        "config": pipe.config.to_dict(),
        "stages": [r.summary() for r in pipe.results.values()],
        "artifacts": {},
        "numerics": pipe.numerics(),
    }


def write_outputs(pipe: Pipeline, out: Path) -> dict[str, Any]:
    """Write everything the pipeline produced under ``out``; returns the summary written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "stages").mkdir(exist_ok=True)
    data = summary(pipe)
    graphs = {}
    for name, result in pipe.results.items():
        if result.graph is None:
            continue
        rel = f"stages/{stage_file_stem(name)}.json"
        (out / rel).write_text(json.dumps(result.graph.to_dict(), indent=1))
        graphs[name] = rel
    data["artifacts"]["graphs"] = graphs
    pte = pipe.pte_bytes()
    if pte is not None:
        (out / "model.pte").write_bytes(pte)
        data["artifacts"]["pte"] = "model.pte"
    # SQNR of identical outputs is +inf; JSON has no inf, Python's json writes it as Infinity and reads it back
    (out / "summary.json").write_text(json.dumps(data, indent=2))
    return data
