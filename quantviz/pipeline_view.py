"""What the analyses (``numerics/``, ``why/``) may read of a pipeline: a narrow, read-only view.

:class:`~quantviz.pipeline.Pipeline` satisfies it; so does any record that holds finished stage results (a test
double, a pipeline loaded from disk). Analyses typed with it cannot run stages or change the config.

Example::

    def worst_stage(pipe: PipelineView) -> str:
        return max(pipe.results, key=lambda s: pipe.results[s].seconds)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Protocol

from quantviz.config import PipelineConfig
from quantviz.flows.base import Flow
from quantviz.graph import GraphView
from quantviz.model_spec import ModelSpec

if TYPE_CHECKING:
    from quantviz.pipeline import StageResult


class PipelineView(Protocol):
    """A finished (or partly finished) pipeline, read-only."""

    @property
    def spec(self) -> ModelSpec: ...  # the model, its example inputs and data

    @property
    def config(self) -> PipelineConfig: ...  # the choices the stages ran with

    @property
    def results(self) -> Mapping[str, "StageResult"]: ...  # stage name -> result, in stage order

    @property
    def flow(self) -> Flow: ...  # the stages in order and the roles they play (reference, lowered, program)

    @property
    def stage_names(self) -> tuple[str, ...]: ...  # the flow's stages, in order

    def role(self, role: str) -> str | None:
        """The stage playing ``role`` ("reference", "lowered", "program", "float_graph") in this flow, or None."""
        ...

    def result_of(self, role: str) -> "StageResult | None":
        """The result of the stage playing ``role`` in this flow ("delegated", "runtime", ...), or None."""
        ...

    def reference_module(self) -> Any:
        """The reference quantized model as a callable module, or None when its stage has not run."""
        ...

    def artifact(self, stage: str) -> Any:
        """The stage's artifact, or None when the stage did not run or failed."""
        ...

    def graph(self, stage: str) -> GraphView | None:
        """The stage's graph, or None when the stage did not run or failed."""
        ...
