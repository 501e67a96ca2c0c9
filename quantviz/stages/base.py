"""What a stage receives and returns. Stages are plain functions: ``run(ctx) -> StageOutput``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from quantviz.config import PipelineConfig
from quantviz.errors import StageError
from quantviz.model_spec import ModelSpec
from quantviz.untraceable import UntraceableSite

if TYPE_CHECKING:  # quantviz_kernels is optional (it builds C++ kernels); only the fuse stage imports it
    from quantviz_kernels.fusion_pass import FusionRecord, Refusal

Progress = Callable[[float, str], None]


@dataclass
class StageContext:
    """The model, the config, earlier stages' artifacts and a progress callback."""

    stage: str
    spec: ModelSpec
    config: PipelineConfig
    artifacts: Mapping[str, Any]
    progress: Progress = lambda fraction, text: None

    def artifact(self, stage: str) -> Any:
        try:
            return self.artifacts[stage]
        except KeyError:
            raise StageError(self.stage, f"stage '{stage}' has not produced a result",
                             f"run the pipeline from '{stage}' first") from None


@dataclass
class Diagnostics:
    """Structured findings a stage leaves for later readers (notes are the human-readable side)."""

    # trace: calls fx could not trace, kept as leaves ("wrap") or skipped ("skip")
    untraceable: list[UntraceableSite] = field(default_factory=list)
    # delegate: node name -> why the partitioner left it out
    partition_reasons: dict[str, list[str]] = field(default_factory=dict)
    # fuse: quantviz kernels' fusions applied, one per node group replaced
    fusions: list[FusionRecord] = field(default_factory=list)
    # fuse: quantviz patterns that matched but were refused, with the reason
    refusals: list[Refusal] = field(default_factory=list)


@dataclass
class StageOutput:
    """A stage's artifact, what to draw of it, and the API calls it made (as copyable Python)."""

    artifact: Any
    graph_source: Any = None  # what to snapshot; None: the artifact itself; False: nothing to draw
    calls: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)  # structured findings, e.g. partition reasons
