"""Run the stages in order, keep every stage's result, and resume after a config change.

Example::

    from quantviz import Pipeline, PipelineConfig, load_model

    pipe = Pipeline(load_model("sample:digits_cnn"), PipelineConfig(flow="pt2e"))
    pipe.run()
    pipe.results["convert"].graph.kind_counts()
    pipe.update(pipe.config.with_changes(backend="xnnpack"))  # keeps trace..capture
    pipe.run()
    pipe.stage_names   # the flow's stages, in order: ('trace', 'prepare', ..., 'run')
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Collection, Iterator

from quantviz.backends import backend_of, normalize, require_backend
from quantviz.config import ConfigChanges, PipelineConfig
from quantviz.errors import StageError
from quantviz.flows import Flow, check, flow_of, with_backend_defaults
from quantviz.graph import GraphView, snapshot
from quantviz.known_issues import explain
from quantviz.measure.run_numerics import RunNumerics
from quantviz.model_spec import ModelSpec
from quantviz.runtime import as_module
from quantviz.stages.base import Diagnostics, Stage, StageContext
from quantviz.torch_lock import TORCH_LOCK
from quantviz.workers import WorkerCancelled


@dataclass
class StageResult:
    """What one stage produced. ``artifact`` is the live object (not serialised)."""

    name: str
    ok: bool
    seconds: float
    graph_source: Any = field(default=None, repr=False)  # what ``graph`` snapshots on first read
    error: StageError | None = None
    calls: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    artifact: Any = None
    diagnostics: Diagnostics = field(default_factory=Diagnostics)  # structured findings (see stages.base)
    table: Any = None  # what a stage without a graph shows instead (the quantize stage's weights)
    timed_by: str = "quantviz"  # who measured ``seconds``: "quantviz", or the library that ran it ("ExportSession")
    methods: dict[str, Any] = field(default_factory=dict, repr=False)  # the other methods' programs (StageOutput)
    _graph: GraphView | None = field(default=None, repr=False)

    @property
    def graph(self) -> GraphView | None:
        """The stage's graph, snapshotted on first read (the pipeline forces it before a later stage changes the
        artifact in place), so runs that never look at a graph do not pay for it."""
        if self.graph_source is not None:
            self._graph = snapshot(self.graph_source, self.name)
            self.graph_source = None
        return self._graph

    def summary(self) -> dict[str, Any]:
        """The stage entry of summary.json."""
        g = self.graph
        return {"name": self.name, "ok": self.ok, "seconds": round(self.seconds, 4), "timed_by": self.timed_by,
                "nodes": len(g.nodes) if g else 0, "kinds": g.kind_counts() if g else {},
                "patterns": len(g.patterns) if g else 0,
                "error": self.error.to_dict() if self.error else None}


def mentions_quantization(source: Any) -> bool:
    """True when the graph has a quantize/dequantize, a quantized operator or a delegate call (cheap: no snapshot)."""
    if hasattr(source, "exported_program") and callable(source.exported_program):
        source = source.exported_program()
    gm = getattr(source, "graph_module", source)
    graph = getattr(gm, "graph", None)
    if graph is None:
        return True  # nothing to look at: do not claim it is unquantized
    for n in graph.nodes:
        if n.op == "call_function":
            t = str(n.target)
            if "quantize" in t or "quantized" in t or "quantviz" in t or "call_delegate" in t:
                return True
    return False


@dataclass
class StageEvent:
    kind: str  # "start", "progress", "end"
    stage: str
    fraction: float = 0.0
    text: str = ""
    result: StageResult | None = None


class Pipeline:
    """Steps one model through the stages of a :class:`PipelineConfig`."""

    def __init__(self, spec: ModelSpec, config: PipelineConfig | None = None,
                 on_event: Callable[[StageEvent], None] | None = None, apply_backend_defaults: bool = True,
                 explicit: Collection[str] = frozenset()) -> None:
        self.spec = spec
        # the values the backend needs where the config keeps the defaults (Arm: no export guards; Vulkan:
        # per-channel weights; XNNPACK: the pt2e flow), noted on the stage that reads them; off: the config exactly
        # as given
        self.apply_backend_defaults = apply_backend_defaults
        # the fields the user chose (the CLI's flags given, the sidebar's widgets set): the backend's defaults leave
        # them alone, so `--flow fx --backend xnnpack` runs fx (``with_backend_defaults``); kept by update and fork
        self.explicit = frozenset(explicit)
        self.config, self.backend_defaults = self._with_defaults(config or PipelineConfig())
        self.flow: Flow = flow_of(self.config)  # a ConfigError when ``until`` is not one of its stages
        # resolved once per run and handed to every stage (``ctx.backend``); a ConfigError with the pip command when
        # the backend's packages are missing
        self.backend = require_backend(self.config)
        self.on_event = on_event or (lambda e: None)
        self.results: dict[str, StageResult] = {}
        self._cache: dict[tuple, Any] = {}  # values derived from results, keyed by the result's identity

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The flow's stages, in order."""
        return self.flow.names

    def stage(self, name: str) -> Stage:
        """The stage record ``name`` of this pipeline's flow."""
        return self.flow.stage(name)

    def role(self, role: str) -> str | None:
        """The stage that plays ``role`` in this flow ("reference", "lowered", "program", "float_graph")."""
        return self.flow.roles.get(role)

    def result_of(self, role: str) -> StageResult | None:
        """The result of the stage playing ``role`` in this flow, or None when the flow has no such stage or it has
        not run: ``pipe.result_of("reference")`` is convert's under fx and pt2e, capture's under torchao."""
        name = self.flow.roles.get(role)
        return self.results.get(name) if name else None

    # -- state -------------------------------------------------------------------------------------------------
    @property
    def failed(self) -> StageResult | None:
        return next((r for r in self.results.values() if not r.ok), None)

    @property
    def ok(self) -> bool:
        """True when every stage up to ``config.until`` ran and none failed."""
        return self.failed is None and self.config.until in self.results

    def artifact(self, stage: str) -> Any:
        """The stage's artifact, or None when it did not run or failed (:class:`~quantviz.pipeline_view.PipelineView`)."""
        r = self.results.get(stage)
        return r.artifact if r is not None and r.ok else None

    def graph(self, stage: str) -> GraphView | None:
        """The stage's graph, or None when it did not run or failed."""
        r = self.results.get(stage)
        return r.graph if r is not None and r.ok else None

    def artifacts(self) -> dict[str, Any]:
        return {name: r.artifact for name, r in self.results.items() if r.ok}

    def update(self, config: PipelineConfig) -> list[str]:
        """Adopt ``config``; drop the results of every stage it affects. Returns the dropped stage names."""
        config, self.backend_defaults = self._with_defaults(config)
        old, new_flow = self.config, flow_of(config)
        self.config, self.backend = config, require_backend(config)
        if (new_flow.name, new_flow.names) != (self.flow.name, self.flow.names):  # another flow: nothing carries over
            self.flow = new_flow
            dropped = list(self.results)
            self.results.clear()
            return dropped
        stages = self.flow.stages
        first = next((i for i, s in enumerate(stages) if s.signature(old) != s.signature(config)), None)
        failed = self.failed
        if failed is not None:  # a failed stage is always re-tried
            i = self.flow.index(failed.name)
            first = i if first is None else min(first, i)
        if first is None:
            return []
        while first > 0 and stages[first].mutates_input:
            first -= 1  # its input was changed in place: rebuild it
        dropped = [s.name for s in stages[first:] if s.name in self.results]
        for s in dropped:
            del self.results[s]
        return dropped

    def fork(self, config: PipelineConfig, explicit: Collection[str] | None = None) -> "Pipeline":
        """A new pipeline for ``config`` that shares this one's results for the stages ``config`` leaves alone;
        ``explicit``: the fields the user chose (default: this pipeline's).

        Only stages before the first affected one are shared, and never one a later stage changes in place.
        """
        other = Pipeline(self.spec, self.config, self.on_event, self.apply_backend_defaults,
                         self.explicit if explicit is None else explicit)
        other.results = dict(self.results)
        other._cache = self._cache  # derived values of shared results (e.g. reference modules) stay valid
        other.update(config)
        return other

    # -- running -----------------------------------------------------------------------------------------------
    def run(self, until: str | None = None, should_stop: Callable[[], bool] | None = None) -> "Pipeline":
        """Run every stage up to ``until`` (default: config.until) that has no result yet.

        Stops at the first failing stage; its StageResult holds the StageError. Earlier results stay.
        ``should_stop`` is asked before each stage that would run; True ends the run there (a stage that has
        started always finishes), e.g. ``pipe.run(should_stop=stop_event.is_set)`` from a worker thread.
        """
        until = until or self.config.until
        self._should_stop = should_stop
        stages = self.flow.stages
        last = self.flow.index(until)
        for i, stage in enumerate(stages[: last + 1]):
            if stage.name in self.results:
                if not self.results[stage.name].ok:
                    break
                continue
            if should_stop is not None and should_stop():
                break
            if stage.mutates_input and i > 0 and stages[i - 1].name in self.results:
                self.results[stages[i - 1].name].graph  # snapshot now: this stage changes that artifact in place
            result = self._run_stage(stage)
            if result is None:  # cancelled by Stop: no result, the stage runs again on Continue
                break
            self.results[stage.name] = result
            if not result.ok:
                break
        return self

    def _run_stage(self, stage: Stage) -> StageResult | None:
        import torch

        # one stage at a time in this process (see quantviz/torch_lock.py); the thread's grad mode as it was after
        # the stage, whatever happened in it: an exception raised inside a model's @torch.no_grad() region of an
        # exported graph (wrap_with_set_grad_enabled, e.g. a rotary embedding) leaves grad mode off, and every
        # later training step in this thread (a QAT fine-tune, the next run in the app) would fail
        with TORCH_LOCK, torch.set_grad_enabled(torch.is_grad_enabled()):
            return self._run_stage_locked(stage)

    def _run_stage_locked(self, stage: Stage) -> StageResult | None:
        self.on_event(StageEvent("start", stage.name))

        def progress(fraction: float, text: str) -> None:
            self.on_event(StageEvent("progress", stage.name, fraction, text))

        stop = getattr(self, "_should_stop", None) or (lambda: False)
        ctx = StageContext(stage.name, self.spec, self.config, self.artifacts(), progress, self.flow, self.backend,
                           should_stop=stop, methods={n: r.methods for n, r in self.results.items() if r.methods})
        t0 = time.perf_counter()
        log: list[str] = []
        try:
            if stage.name == self.flow.names[0]:
                self.flow.check_methods(self.spec, self.config, stage.name)  # refuses what it cannot carry
            with capture_library_log(log):
                out = stage.run(ctx)
            seconds = time.perf_counter() - t0
            out.notes[:0] = self._defaults_notes(stage)
            source = out.artifact if out.graph_source is None else out.graph_source
            source = None if source is False else source
            if source is not None and self._after_reference(stage.name) and not mentions_quantization(source):
                out.notes.append("no quantized patterns: nothing in this graph is quantized")
            result = StageResult(name=stage.name, ok=True, seconds=seconds if out.seconds is None else out.seconds,
                                 graph_source=source, calls=out.calls, notes=out.notes, metrics=out.metrics,
                                 artifact=out.artifact, diagnostics=out.diagnostics, table=out.table,
                                 timed_by="quantviz" if out.seconds is None else "ExportSession",
                                 methods=out.methods)
        except KeyboardInterrupt:
            raise
        except WorkerCancelled:  # Stop killed the stage's worker process: nothing to keep, nothing failed
            self.on_event(StageEvent("end", stage.name, 1.0, "stopped"))
            return None
        except Exception as exc:  # noqa: BLE001 - every failure becomes a StageError with a hint
            error = explain(stage.name, exc, self.config, stage.remedy, self.runs_differently)
            error.log = log + [line for line in error.log if line not in log]
            result = StageResult(name=stage.name, ok=False, seconds=time.perf_counter() - t0, error=error,
                                 metrics=error.metrics)
        self.on_event(StageEvent("end", stage.name, 1.0, "", result))
        return result

    def runs_differently(self, a: PipelineConfig, b: PipelineConfig) -> bool:
        """True when configs ``a`` and ``b`` would run some stage differently (another flow, or a stage signature
        that differs): ``--partitioner none`` on a config that delegates nothing does not, nor does a config the
        records refuse (``quantviz.flows.check``: ``--activation-bits 16`` on XNNPACK)."""
        try:
            a, b = normalize(a), normalize(b)  # --partitioner xnnpack is --backend xnnpack
            check(b)
        except ValueError:
            return False
        if a.flow != b.flow:
            return True
        try:
            return any(s.signature(a) != s.signature(b) for s in flow_of(a).stages)
        except ValueError:  # a config this flow cannot run: it is a change
            return True

    def _with_defaults(self, config: PipelineConfig) -> tuple[PipelineConfig, ConfigChanges]:
        """``config`` normalized (``--partitioner xnnpack`` is ``--backend xnnpack``, ``normalize``), with the
        backend's defaults unless they are off."""
        return with_backend_defaults(config, self.explicit) if self.apply_backend_defaults else (normalize(config), {})

    def _defaults_notes(self, stage: Stage) -> list[str]:
        """One note for each value the backend needed that this stage reads (``Backend.defaults``)."""
        backend = backend_of(self.config).name
        defaults = {f.name: f.default for f in fields(PipelineConfig)}
        return [f"{name}={value!r} applied: the {backend} backend needs it (its record's defaults; the default is "
                f"{defaults[name]!r}); the calls below and reproduce.py use it"
                for name, value in self.backend_defaults.items() if name in stage.reads_under(self.config)]

    def _after_reference(self, name: str) -> bool:
        """True for the stage making the reference model and every later one (their graphs should quantize)."""
        reference = self.flow.roles.get("reference")
        return reference is not None and name in self.flow.after(reference)

    # -- outputs -----------------------------------------------------------------------------------------------
    def numerics(self) -> RunNumerics:
        """End-to-end numbers of the flow's run (also when it failed on a mismatch it measured); every field None
        when nothing was measured."""
        run = self.result_of("runtime")
        return RunNumerics.from_dict(run.metrics) if run else RunNumerics()

    def runtime_methods(self) -> list[Any]:
        """The runtime stage's record of each method of the .pte it ran (``MethodRun``: name, input shapes, SQNR);
        empty before it ran or when it failed."""
        run = self.result_of("runtime")
        return list(getattr(run.artifact, "methods", None) or []) if run is not None and run.ok else []

    def pte_bytes(self) -> bytes | None:
        program = self.results.get(self.flow.roles.get("program", ""))
        return program.artifact.buffer if program and program.ok else None

    def reference_module(self) -> Any:
        """The reference quantized model as a callable module (the flow's "reference" stage: convert's GraphModule,
        or the captured program's ``module()``), or None when that stage has not run; built once per result."""
        name = self.flow.roles.get("reference")
        result = self.results.get(name or "")
        if result is None or not result.ok:
            return None
        cached = self._cache.get(("reference", id(result)))
        if cached is None:
            cached = self._cache[("reference", id(result))] = as_module(result.artifact)
        return cached


# The libraries whose log records a failing stage keeps (StageError.log).
LIBRARY_LOGGERS = ("torch", "torchao", "executorch")
# torch's structured trace log (``torch._logging._internal.trace_log``, for tlparse): it never propagates and carries
# DEBUG records only, and torch switches structured tracing on whenever it has a handler (``trace_structured`` and
# the AOT partitioner test ``trace_log.handlers``): every dynamo graph, guard and stack gets formatted for it. A
# handler of ours there keeps nothing (WARNING and above) and cost export_llm's strict torch.export 2,259 formatted
# records, 11.3 s of a profiled 6-layer SmolLM2 run (docs/benchmarks.md), so it is never given one.
NEVER_HANDLED = ("torch.__trace",)


class _LogLines(logging.Handler):
    """Keeps each WARNING-or-worse record once, as ``LEVEL logger: message`` (+ the exception's last line)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.lines = lines
        self._last: logging.LogRecord | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record is self._last:  # the handler sits on several loggers of one propagation chain
            return
        self._last = record
        try:
            text = " ".join(record.getMessage().split())[:1000]
        except Exception:  # noqa: BLE001 - a record whose arguments do not format
            text = str(record.msg)[:1000]
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            text += f" [{type(exc).__name__}: {first[:300]}]"
        self.lines.append(f"{record.levelname} {record.name}: {text}")


@contextlib.contextmanager
def capture_library_log(lines: list[str]) -> Iterator[None]:
    """Append to ``lines`` what torch, torchao and executorch log at WARNING and above while the block runs.

    Loggers keep their levels (a logger quieted to ERROR stays quiet) and their handlers; the capturing handler
    is also put on every logger of those libraries that does not propagate (torch's own log setup has some), except
    torch's structured trace log (``NEVER_HANDLED``: a handler there turns torch's structured tracing on).

    Example::

        log: list[str] = []
        with capture_library_log(log):
            edge.to_backend(partitioner)
    """
    handler = _LogLines(lines)
    names = [n for n, lg in list(logging.Logger.manager.loggerDict.items())
             if isinstance(lg, logging.Logger) and not lg.propagate and n.split(".")[0] in LIBRARY_LOGGERS
             and n not in NEVER_HANDLED]
    loggers = [logging.getLogger(n) for n in dict.fromkeys([*LIBRARY_LOGGERS, *names])]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
