"""What a flow is: an ordered list of stages, some of them absent, and which stage plays which role.

A flow is one file, ``quantviz/flows/<name>.py``, with one record, ``FLOW = Flow(...)``::

    FLOW = Flow("torchao", "torchao's quantize_ source transform, then torch.export and lowering",
                slots=(trace.STAGE, quantize.STAGE, Absent("calibrate", "dynamic activations: nothing to observe"),
                       capture.STAGE, edge.STAGE, delegate.STAGE, emit.STAGE, run.STAGE),
                roles={"reference": "capture", "lowered": "delegate", "program": "emit", "runtime": "run"})

What the code around the flow needs to know of it is a field of its record, never a test of its name: the backend
``--backend auto`` stands for under it (``default_backend``), whether its observers see calibration data
(``calibration``), the dtypes its figures are judged by (``precision_of``), a model it builds itself
(``own_model``), the sidebar's first values when the app opens on it (``app_start``), whether it carries a model's
other methods (``ModelSpec.methods``: decode beside a prefill forward) into the one .pte (``exports_methods``).

``recovery`` declares the config changes ``quantviz recover`` may try under the flow (``quantviz.candidates``;
the fx flow: a layer kept float, per-channel weights, another observer, more calibration).

A stage the flow does not have is an :class:`Absent` slot: the rail shows it as "not part of this flow", with
its reason, and nothing runs for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

from torch.fx import GraphModule

from quantviz.backends import BACKENDS
from quantviz.backends.base import Backend
from quantviz.config import ConfigChanges, PipelineConfig
from quantviz.errors import StageError
from quantviz.measure.readable import Precision
from quantviz.model_spec import ModelSpec
from quantviz.candidates import Recovery
from quantviz.stages.base import Stage

# The roles a stage can play for the analyses that run after the flow:
# reference: the reference quantized model (float ops between q/dq; a GraphModule or ExportedProgram)
# lowered: the edge program that becomes the .pte (after delegation and fusion)
# program: the ExecutorchProgramManager (the .pte bytes)
# float_graph: the float model as a graph (per-node numerics follow its nodes)
# delegated: the edge program right after partitioning (what the backend took, before any fusion)
# runtime: the run of the .pte (quantviz.stages.run's RuntimeRun)
Role = Literal["reference", "lowered", "program", "float_graph", "delegated", "runtime"]


class FlowRecordError(ValueError):
    """A flow record that cannot work (raised where flows are registered: ``quantviz.flows.discover``, and where a
    resolving flow makes its stages: ``Flow.for_config``), naming the flow and what to declare."""


@dataclass(frozen=True)
class Absent:
    """A stage a flow does not have, shown in its place on the rail."""

    name: str  # e.g. "calibrate"
    reason: str  # why this flow has no such stage, in one sentence


@dataclass(frozen=True)
class OwnModel:
    """The model a flow builds from its own configuration (export_llm: the one its LlmConfig names), instead of
    one the user loads."""

    build: Callable[[PipelineConfig], ModelSpec]  # the config -> the model, its inputs and its data
    usage: str  # the CLI call that runs it, e.g. "quantviz run export_llm --llm-config FILE.yaml"
    measured_on: str  # what its end-to-end figures are measured on, in words (the CLI's first line says it)


def default_precision(config: PipelineConfig) -> Precision:
    """int16 activations with ``activation_bits=16``, else int8; 8-bit weights (XNNPACK's and the backends' own
    quantizers)."""
    return Precision("int16" if config.activation_bits == 16 else "int8", 8)


@dataclass(frozen=True)
class Flow:
    """The stages of one flow, in order, and the roles they play."""

    name: str  # the config's flow name
    description: str  # one line
    slots: tuple[Stage | Absent, ...]  # in rail order
    roles: dict[str, str] = field(default_factory=dict)  # Role -> stage name
    # the backend ``backend="auto"`` stands for under this flow (torchao: "xnnpack", the configurations quantize_
    # makes are XNNPACK's); None: its own configuration names the backend (the recipe flow: the recipe's).
    # ``quantviz.flows.discover`` registers it with the backends (``quantviz.backends.backend_name`` resolves it)
    default_backend: str | None = "portable"
    # when the stages depend on the config (the recipe flow: the session's own stages), the flow for a config
    resolve: Callable[[PipelineConfig], "Flow"] | None = None
    # the config changes ``quantviz recover`` may try under this flow (its own options; the backend adds its
    # quantizer's): a function of the config and the model's weighted layers; None: this flow offers none
    recovery: Recovery | None = None
    # a config this flow runs under, to list the options it reads (a flow that resolves its stages needs one:
    # the recipe flow's stages depend on its recipe); None: the defaults with ``flow=name``
    example: PipelineConfig | None = None
    # the float model as a graph when the float_graph stage has not run (per-node numerics follow its node names);
    # None: torch.export of the float model
    float_graph: Callable[[ModelSpec, PipelineConfig], GraphModule] | None = None
    # why this flow cannot lower to a backend ("" when it can; the torchao flow: only where XNNPACK delegates run)
    backend_refusal: Callable[[Backend], str] | None = None
    # the backend's quantizer is this flow's (pt2e), so its options (``Backend.recovery``) are candidates too
    backend_recovery: bool = False
    # the stage a warm worker runs a tiny model to, paying this flow's one-time costs once (pt2e: prepare, where
    # torch.export's first call and the quantizer's pattern graphs are); "": nothing beyond the imports
    warm_until: str = ""
    rank: int = 100  # where the CLI and the app list it among the flows (lower first; then by name)
    # True when its observers see the calibration batches under a config (figures measured on those batches then
    # flatter the model: ``quantviz.data.EvaluationData`` says so); None: never (quantize_'s dynamic or
    # weight-only schemes calibrate nothing)
    calibration: Callable[[PipelineConfig], bool] | None = None
    # the dtypes its quantized model computes in under a config (the activation dtype the pages name, the SQNR
    # levels a figure is judged by: ``quantviz.measure.readable``); ``default_precision`` unless it says otherwise
    precision_of: Callable[[PipelineConfig], Precision] = default_precision
    # the model it builds from its own config (export_llm); None: the model the user loads
    own_model: OwnModel | None = None
    # the sidebar's first values, beyond ``flow``, when the app opens on this flow (pt2e: XNNPACK, where a newcomer
    # sees delegation and fusion at once); None: the app opens on it only when QUANTVIZ_DEFAULT_FLOW names it
    app_start: ConfigChanges | None = None
    # True when its quantized model is the eager model (torchao's quantize_), so every method of
    # ``ModelSpec.methods`` is quantized the same way, exported beside forward (capture), lowered with it in one
    # to_edge_transform_and_lower call, emitted into one .pte and run (run); False: such a spec is refused at its
    # first stage (``check_methods``), with ``methods_refusal`` as the cause
    exports_methods: bool = False
    methods_refusal: str = "it quantizes one exported graph (forward's), so the other methods would not be " \
                           "quantized the same way"

    def check_methods(self, spec: ModelSpec, config: PipelineConfig, stage: str) -> None:
        """Refuse, at ``stage`` (the flow's first), a spec with methods beside forward when this flow cannot carry
        them: the cause, and ``--flow torchao`` as the fix (as data, ``StageError.fix``)::

            flow_of(PipelineConfig(flow="pt2e")).check_methods(load_model("sample:prefill_decode"), config, "trace")
            # StageError: the model's methods forward, decode cannot go through the pt2e flow: ...
        """
        if not spec.methods or self.exports_methods:
            return
        fix: ConfigChanges = {"flow": "torchao", **({"recipe": ""} if config.recipe else {})}
        raise StageError(stage, f"the model's methods {', '.join(spec.method_names)} cannot go through the "
                                f"{self.name} flow: {self.methods_refusal}",
                         "use --flow torchao: quantize_ quantizes the eager model, so every method is quantized the "
                         "same way, exported and lowered together into one .pte (to_edge_transform_and_lower with a "
                         "dict of programs)", fix=fix, metrics={"methods": len(spec.method_names)})

    def calibrates(self, config: PipelineConfig) -> bool:
        """True when this flow's observers see the calibration batches under ``config``::

            flow_of(PipelineConfig(flow="torchao")).calibrates(PipelineConfig(flow="torchao"))   # False
        """
        return self.calibration is not None and self.calibration(config)

    def precision(self, config: PipelineConfig) -> Precision:
        """The dtypes this flow's quantized model computes in under ``config``, e.g. ``Precision("uint8", 8)`` for
        fx (ExecuTorch's BackendConfig)."""
        return self.precision_of(config)

    def for_config(self, config: PipelineConfig) -> "Flow":
        """This flow as it runs under ``config`` (itself, unless it resolves its stages per config: that record is
        checked as ``discover`` checks the others, a FlowRecordError when ``problems()`` finds any)."""
        if self.resolve is None:
            return self
        flow = self.resolve(config)
        flow.raise_problems()
        return flow

    def problems(self) -> list[str]:
        """What makes this record unable to work, in words (empty when nothing does): every role must name one of
        its running stages, and the ``runtime`` role must be declared, or ``Pipeline.numerics()`` (the run of the
        stage playing it) is silently empty; its ``default_backend`` must be a backend (or None). A flow that
        resolves its stages per config is checked as resolved.
        ::

            Flow("toy", "...", slots=(trace_export.STAGE, run.STAGE), roles={}).problems()
            # ["it declares no 'runtime' role: ... roles={..., 'runtime': 'run'}"]
        """
        wrong_backend = ([f"its default_backend {self.default_backend!r} is not a backend: {', '.join(BACKENDS)}"]
                         if self.default_backend is not None and self.default_backend not in BACKENDS else [])
        if self.resolve is not None:
            return wrong_backend
        out = wrong_backend + [
            f"its {role!r} role names {stage!r}, which is not one of its running stages ({', '.join(self.names)})"
            for role, stage in self.roles.items() if stage not in self.names]
        if "runtime" not in self.roles:
            out.append("it declares no 'runtime' role: Pipeline.numerics() reads the run of the stage playing it, so "
                       "its end-to-end figures would be empty; declare the stage that runs the .pte, e.g. "
                       "roles={..., 'runtime': 'run'}")
        return out

    def raise_problems(self, where: str = "") -> None:
        """A FlowRecordError listing ``problems()`` (``where``: the module that declares the record), if any."""
        found = self.problems()
        if found:
            raise FlowRecordError(f"flow {self.name!r}{f' ({where})' if where else ''}: " + "; ".join(found))

    def reads(self, config: PipelineConfig) -> frozenset[str]:
        """The config fields this flow's stages read under ``config`` (their ``reads`` and ``reads_when``)."""
        return frozenset(r for s in self.for_config(config).stages for r in s.reads_under(config))

    def options(self) -> frozenset[str]:
        """The config fields that mean something under this flow: what its stages read (the app shows a widget
        for each; ``quantviz.flows.applies_to``), derived from the stage records, never declared again."""
        return self.reads(self.example or PipelineConfig(flow=self.name)) | {"flow"}  # type: ignore[arg-type]

    def uses_quantviz_kernels(self, config: PipelineConfig) -> bool:
        """True when this flow's fuse stage applies quantviz's patterns under ``config`` (their kernels must be
        loaded to run the program): it reads ``fusion``, and ``fusion`` asks for them."""
        return config.uses_quantviz_kernels and "fusion" in self.reads(config)

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The stages that run, in order."""
        return tuple(s for s in self.slots if isinstance(s, Stage))

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the stages that run, in order."""
        return tuple(s.name for s in self.stages)

    @property
    def absent(self) -> dict[str, str]:
        """Absent stage name -> reason."""
        return {s.name: s.reason for s in self.slots if isinstance(s, Absent)}

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"flow {self.name!r} has no stage {name!r} (its stages: {', '.join(self.names)})")

    def index(self, name: str) -> int:
        """Position of a running stage among ``names`` (0 = first)."""
        return self.names.index(name)

    def number(self, name: str) -> int:
        """The 1-based number the rail shows for a slot (absent slots are numbered too)."""
        return [s.name for s in self.slots].index(name) + 1

    def before(self, name: str) -> str | None:
        """The running stage before ``name``, or None for the first."""
        i = self.index(name)
        return self.names[i - 1] if i > 0 else None

    def after(self, first: str) -> tuple[str, ...]:
        """``first`` and every running stage after it."""
        return self.names[self.index(first):] if first in self.names else ()
