"""What a stage is, receives and returns.

A stage is one file, ``quantviz/stages/<name>.py``, with one record, ``STAGE = Stage(...)``, that declares every
fact about it: what it runs, what it reads from the config, whether it changes its input in place, what to try
when it fails, which numerics pair colours its graph, whether its page runs torch, and the bare call of a user's
script it stands for. Flows (``quantviz/flows/``) list stages; everything else (the pipeline's resume rule, the
generic remedies, the blame overlay, the app's lock, the bare flow) reads these records::

    STAGE = Stage("capture", run, description="torch.export.export the reference model",
                  explanation="...", remedy=Remedy("try --flow pt2e", ({"flow": "pt2e"},)), bare=bare)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Protocol

from quantviz.backends.base import Backend
from quantviz.config import PipelineConfig
from quantviz.errors import StageError
from quantviz.remedy import Remedy  # noqa: F401  (part of a stage's record)
from quantviz.model_spec import ModelSpec
from quantviz.untraceable import UntraceableSite

if TYPE_CHECKING:  # quantviz_kernels is optional (it builds C++ kernels); only the fuse stage imports it
    from quantviz_kernels.fusion_pass import FusionRecord, Refusal

    from quantviz.stages.qat_qparams import QParamsComparison

Progress = Callable[[float, str], None]

# The blame table's level pairs (quantviz.numerics.blame.BlameRow's SQNR columns): the one that colours a
# stage's graph is the pair whose later level that stage's program computes.
OverlayPair = Literal["float_vs_reference_sqnr_db", "reference_vs_fused_sqnr_db", "fused_vs_runtime_sqnr_db"]

class StageOrder(Protocol):
    """What a stage may know of its flow (``quantviz.flows.base.Flow`` is one): the stage before it, which stage
    plays which role, and the facts of it a stage needs (its kernels, whether its observers saw calibration data)."""

    roles: dict[str, str]

    def before(self, name: str) -> str | None: ...

    def uses_quantviz_kernels(self, config: PipelineConfig) -> bool: ...

    def calibrates(self, config: PipelineConfig) -> bool: ...


@dataclass
class StageContext:
    """The model, the config, the flow, earlier stages' artifacts and a progress callback."""

    stage: str
    spec: ModelSpec
    config: PipelineConfig
    artifacts: Mapping[str, Any]
    progress: Progress = lambda fraction, text: None
    flow: StageOrder | None = None  # the flow being run (its stage order and roles); None in tests that build one
    # the config's backend, resolved once per run by the pipeline (None: resolve it from the config)
    backend: Backend | None = None
    should_stop: Callable[[], bool] = lambda: False  # Stop was pressed: work in a worker process is killed at once
    # per stage, the programs of the model's other methods kept beside its artifact (``StageOutput.methods``)
    methods: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backend is None:
            from quantviz.backends import backend_of

            self.backend = backend_of(self.config)

    def artifact(self, stage: str) -> Any:
        try:
            return self.artifacts[stage]
        except KeyError:
            raise StageError(self.stage, f"stage '{stage}' has not produced a result",
                             f"run the pipeline from '{stage}' first") from None

    def previous(self) -> Any:
        """The artifact of the stage before this one in the flow (``trace`` has none: the float model)."""
        if self.flow is None:
            raise StageError(self.stage, "no flow given to the stage context", "run the stage through a Pipeline")
        before = self.flow.before(self.stage)
        return self.spec.model if before is None else self.artifact(before)

    def previous_methods(self) -> dict[str, Any]:
        """The other methods' programs the stage before this one kept beside its artifact (``{}`` when none)::

            {"forward": ctx.previous(), **ctx.previous_methods()}   # every method, e.g. forward and decode
        """
        before = self.flow.before(self.stage) if self.flow is not None else None
        return dict(self.methods.get(before, {})) if before else {}

    def role_methods(self, role: str) -> dict[str, Any]:
        """The other methods' programs the stage playing ``role`` kept (``{}`` when none), e.g.
        ``ctx.role_methods("reference")["decode"]``."""
        name = self.flow.roles.get(role) if self.flow is not None else None
        return dict(self.methods.get(name, {})) if name else {}

    def role(self, role: str) -> Any:
        """The artifact of the stage that plays ``role`` in this flow ("reference", "lowered", "program"), or
        None when the flow has no such stage or it has not run, e.g. ``ctx.role("lowered")``."""
        name = self.flow.roles.get(role) if self.flow is not None else None
        return self.artifacts.get(name) if name else None


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
    # delegate: what the backend's compiler printed while lowering (Vela's performance summary), kept off the terminal
    printed: str = ""
    # a QAT flow's convert: each fake quantizer's qparams in training against the converted model's (qat_qparams.py)
    qat_qparams: QParamsComparison | None = None


@dataclass
class StageOutput:
    """A stage's artifact, what to draw of it, and the API calls it made (as copyable Python)."""

    artifact: Any
    graph_source: Any = None  # what to snapshot; None: the artifact itself; False: nothing to draw
    calls: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)  # structured findings, e.g. partition reasons
    seconds: float | None = None  # the stage's own duration when a library timed it (the recipe session's)
    table: Any = None  # rows a stage without a graph shows instead (the quantize stage's weights), to_dict()-able
    # the programs of the model's other methods (``ModelSpec.methods``) kept beside the artifact, which stays the
    # main method's (forward: the graph the pages show): {"decode": ExportedProgram}; {} for one-method models
    methods: dict[str, Any] = field(default_factory=dict)


# The bare call a stage stands for: reads and writes ``state`` (the artifacts of a user's plain script).
BareStep = Callable[[ModelSpec, PipelineConfig, dict], None]


@dataclass(frozen=True)
class Stage:
    """One step of a flow and every fact about it, declared in the stage's own file."""

    name: str  # the slot it fills: the rail's and the CLI's name, e.g. "capture"
    run: Callable[[StageContext], StageOutput]  # artifact in (ctx.previous()), artifact out
    description: str  # one line (`quantviz stages`)
    explanation: str  # two or three plain sentences (the stage page)
    # config fields whose change re-runs this stage (and every later one)
    reads: tuple[str, ...] = ()
    # fields read only under some configs, e.g. edge reads the partitioner under transform_and_lower
    reads_when: Callable[[PipelineConfig], tuple[str, ...]] | None = None
    # changes its input artifact in place: re-running it needs its predecessor re-run too
    mutates_input: bool = False
    remedy: Remedy = Remedy("")  # what to try when it fails in a way no known issue explains
    overlay: OverlayPair = "float_vs_reference_sqnr_db"  # the blame pair that colours its graph
    page_runs_torch: bool = False  # its page runs torch itself: the app holds TORCH_LOCK while drawing it
    bare: BareStep | None = None  # the bare call(s) of a user's script it stands for (None: part of another's)
    # what the stage's result depends on when it is not simply the values of ``reads`` (prepare depends on the
    # backend's quantizer, not the backend's name): compared between two configs to decide a re-run
    key: Callable[[PipelineConfig], tuple] | None = None
    # the file of a slot's variant, e.g. "prepare_pt2e" (quantviz/stages/prepare_pt2e.py); "" when the slot has one
    variant: str = ""

    def reads_under(self, config: PipelineConfig) -> tuple[str, ...]:
        """The config fields this stage reads under ``config``."""
        return self.reads + (self.reads_when(config) if self.reads_when else ())

    def signature(self, config: PipelineConfig) -> tuple:
        """What this stage's result depends on under ``config``: two configs with equal signatures give the same
        result, so a config change re-runs the pipeline from the first stage whose signature changed."""
        if self.key is not None:
            return self.key(config)
        return tuple((name, getattr(config, name)) for name in self.reads_under(config))
