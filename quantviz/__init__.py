"""quantviz: step a PyTorch model through ExecuTorch's quantization and lowering flow and see every stage.

Example::

    from quantviz import Pipeline, PipelineConfig, load_model

    pipe = Pipeline(load_model("sample:conv_add"), PipelineConfig(flow="pt2e", backend="xnnpack")).run()
    for name, result in pipe.results.items():
        print(name, result.ok, result.graph.kind_counts() if result.graph else "")

Names are imported on first use, so ``import quantviz`` stays cheap (executorch loads only when needed).
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PipelineConfig": "quantviz.config", "flow_of": "quantviz.flows",
    "LoadError": "quantviz.errors", "StageError": "quantviz.errors",
    "load_model": "quantviz.loading", "ModelSpec": "quantviz.model_spec", "Batch": "quantviz.model_spec",
    "Pipeline": "quantviz.pipeline", "StageResult": "quantviz.pipeline",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'quantviz' has no attribute {name!r}")
