"""A Python script that reproduces a pipeline with bare torch/executorch calls.

    text = reproduce_script("sample:digits_cnn", pipe)
    Path("reproduce.py").write_text(text)   # python reproduce.py writes model.pte

The stage calls are the ones each stage recorded (``StageResult.calls``); quantviz is used only to load
the model and its data, and for its two small passes.
"""
from __future__ import annotations

from quantviz.pipeline import Pipeline

PREAMBLE = '''"""Reproduces quantviz's run of {model_ref} with {config}."""
import copy

import torch
from executorch.exir import ExecutorchBackendConfig

import executorch.kernels.quantized  # noqa: F401  quantized_decomposed kernels and out variants
from quantviz import PipelineConfig, load_model
from quantviz.stages.trace import SkippingTracer  # noqa: F401  used when modules are skipped

spec = load_model({model_ref!r})
model, example_inputs = spec.model, spec.example_inputs
calibration_batches = spec.calibration_data({batches})
'''


def reproduce_script(model_ref: str, pipe: Pipeline) -> str:
    """The script for every stage of ``pipe`` that ran successfully."""
    cfg = pipe.config
    lines = [PREAMBLE.format(model_ref=model_ref, config=cfg, batches=cfg.calibration_batches)]
    for name, result in pipe.results.items():
        if not result.ok:
            lines.append(f"# stage '{name}' failed in quantviz: {result.error.message if result.error else ''}")
            break
        lines.append(f"# --- {name} ---")
        lines.extend(result.calls)
        lines.append("")
    if "emit" in pipe.results and pipe.results["emit"].ok:
        lines.append('print("wrote model.pte,", len(et_program.buffer), "bytes")')
    return "\n".join(lines) + "\n"
