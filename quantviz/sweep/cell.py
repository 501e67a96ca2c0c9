"""Run one cell (one model, one configuration) in this process and measure it: a :class:`CellResult`.

Nothing here knows Ray: the Ray runner calls these functions inside worker processes, and the benchmark calls
them one after another in one process.

With ``warm=True`` (what a warm worker runs) the process keeps each model it loaded (``load_model`` once per
reference) and its last pipelines (``quantviz.reuse``): a cell starts from the kept pipeline sharing the most
stages (``Pipeline.fork``), e.g. ``--partitioner none`` and ``xnnpack`` of one model share trace to capture
under ``--lowering to_backend``; ``reused_stages`` says which, ``reused_seconds`` what they took.

Example::

    result = run_cell("sample:conv_add", PipelineConfig(flow="pt2e"))
    result.ok, result.sqnr_float_vs_runtime_db, result.peak_rss_mb
"""
from __future__ import annotations

import math
import os
import resource
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Collection

from quantviz.config import PipelineConfig
from quantviz.errors import LoadError
from quantviz.loading import load_model
from quantviz.numerics.compare import data_sets
from quantviz.measure.metrics import accuracy, sqnr_db
from quantviz.model_spec import ModelSpec, call
from quantviz.numerics.sensitivity import layers_of
from quantviz.pipeline import Pipeline, StageEvent
from quantviz.reuse import PipelineCache
from quantviz.runtime import concat_outputs

SQNR_FIELDS = ("sqnr_float_vs_reference_db", "sqnr_reference_vs_runtime_db", "sqnr_float_vs_runtime_db")
SENSITIVITY_BATCHES = 16  # as `quantviz compare`: at most this many evaluation batches


@dataclass
class CellResult:
    """What one cell produced. ``failed_stage``/``cause`` are set when it failed: a stage's StageError, a model
    that could not be loaded (stage ``load``), or a worker process that died (``crashed``)."""

    cell: str
    model: str
    config: dict[str, Any]
    label: str = ""
    ok: bool = False
    failed_stage: str = ""
    cause: str = ""
    hint: str = ""
    crashed: bool = False
    stages_ran: list[str] = field(default_factory=list)
    sqnr_float_vs_reference_db: float | None = None
    sqnr_reference_vs_runtime_db: float | None = None
    sqnr_float_vs_runtime_db: float | None = None
    float_accuracy: float | None = None
    runtime_accuracy: float | None = None
    delegated_ops: int | None = None
    ops: int | None = None
    share_delegated: float | None = None
    fused_ops: int | None = None
    seconds: float = 0.0
    latency_ms: float | None = None  # the .pte's median run time on its worker (ETDump; other cells may run beside)
    latency_spread: str = ""  # median (min-max), runs, threads, machine and load
    peak_rss_mb: float | None = None
    worker: str = ""  # host:pid that ran it
    sensitivity_layers: list[str] = field(default_factory=list)  # layers to keep float in turn (fanned out)
    sensitivity_base_db: float | None = None  # float vs reference on the sensitivity batches, all quantized
    sensitivity_base_accuracy: float | None = None
    sensitivity: list[dict[str, Any]] = field(default_factory=list)  # SensitivityRow dicts, most sensitive first
    reused_stages: list[str] = field(default_factory=list)  # stages taken from an earlier cell's pipeline (warm)
    reused_seconds: float = 0.0  # what those stages took when they ran

    @property
    def sqnr_db(self) -> float | None:
        """The cell's end-to-end SQNR: float vs runtime when the runtime ran, else float vs reference."""
        return self.sqnr_float_vs_runtime_db if self.sqnr_float_vs_runtime_db is not None \
            else self.sqnr_float_vs_reference_db

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sqnr_db"] = self.sqnr_db
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CellResult":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) so the next reading covers one cell only (Linux; False elsewhere)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB: VmHWM (since the last reset), else getrusage's lifetime max."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sensitivity_data(spec) -> tuple[list[tuple], Any]:
    """The batches and labels sensitivity is measured on: evaluation data if any (as ``quantviz compare``)."""

    sets = data_sets(spec, SENSITIVITY_BATCHES)
    return sets.get("evaluation", next(iter(sets.values())))


def _outputs(model, batches):
    import torch


    with torch.no_grad():
        return concat_outputs([call(model, b) for b in batches])


def _finite(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


class WarmCache:
    """What a warm worker keeps between cells: each model it loaded, and its last pipelines to fork from."""

    def __init__(self, keep: int = 2) -> None:
        self.specs: dict[str, ModelSpec] = {}
        self.pipelines = PipelineCache(keep)

    def spec(self, model: str) -> ModelSpec:
        if model not in self.specs:
            self.specs.clear()  # one model at a time: a zoo's models do not all stay in memory
            self.specs[model] = load_model(model)
        return self.specs[model]


WARM = WarmCache()  # this process's (a warm worker's) cache


def run_cell(model: str, config: PipelineConfig, cell: str = "", label: str = "", sensitivity: int = 0,
             on_stage: Callable[[str], None] = lambda stage: None, warm: bool = False,
             explicit: Collection[str] = frozenset()) -> CellResult:
    """Load ``model``, run the pipeline under ``config`` and measure the cell. Never raises for a failing model:
    the failure is in the result. ``on_stage(name)`` is called as each stage starts (the Ray runner's
    breadcrumbs, so a crash can name the stage). With ``sensitivity`` N, the first N weighted layers are listed
    in ``sensitivity_layers`` for :func:`run_layer` (one run each). ``warm``: use this process's kept model and
    pipelines (``WARM``). ``explicit``: the fields the user set, which the backend's defaults leave alone."""

    reset_peak_rss()
    result = CellResult(cell, model, config.to_dict(), label, worker=f"{socket.gethostname()}:{os.getpid()}")
    t0 = time.perf_counter()
    current = ["load"]

    def on_event(event: StageEvent) -> None:
        if event.kind == "start":
            current[0] = event.stage
            on_stage(event.stage)

    try:
        on_stage("load")
        if warm:
            spec = WARM.spec(model)
            pipe, result.reused_stages, result.reused_seconds = WARM.pipelines.start(spec, model, config, explicit)
            pipe.on_event = on_event
            pipe.run()
            first = pipe.results.get(pipe.stage_names[0])
            if first is not None and first.ok:
                WARM.pipelines.keep_pipeline(model, pipe)
        else:
            spec = load_model(model)
            pipe = Pipeline(spec, config, on_event=on_event, explicit=explicit).run()
        _measure(pipe, result)
        reference = pipe.result_of("reference")
        if sensitivity and reference is not None and reference.ok:
            _prepare_sensitivity(pipe, result, sensitivity)
    except LoadError as exc:
        result.failed_stage, result.cause = "load", str(exc)
        result.hint = "check the model reference; a file must be loadable where the workers run"
    except Exception as exc:  # noqa: BLE001 - a sweep reports every failure and goes on
        result.failed_stage, result.cause = current[0], f"{type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - t0
    result.peak_rss_mb = round(peak_rss_mb(), 1)
    return result


def _measure(pipe, result: CellResult) -> None:
    result.ok = pipe.ok
    result.stages_ran = list(pipe.results)
    failed = pipe.failed
    if failed is not None:
        result.failed_stage = failed.name
        err = failed.error
        result.cause = err.message if err is not None else "failed"
        result.hint = err.hint if err is not None else ""
    if pipe.ok:
        from quantviz.timing.measure import quick_latency

        result.latency_ms, result.latency_spread = quick_latency(pipe)
    numerics = pipe.numerics()
    result.sqnr_float_vs_reference_db = _finite(numerics.float_vs_reference_sqnr_db)
    result.sqnr_reference_vs_runtime_db = _finite(numerics.reference_vs_runtime_sqnr_db)
    result.sqnr_float_vs_runtime_db = _finite(numerics.float_vs_runtime_sqnr_db)
    result.float_accuracy = _finite(numerics.float_accuracy)
    result.runtime_accuracy = _finite(numerics.runtime_accuracy)
    reference = pipe.result_of("reference")
    if result.sqnr_float_vs_reference_db is None and reference is not None and reference.ok:
        # the run stage did not measure (stopped earlier, or failed before running): float vs reference here

        batches = pipe.spec.comparison_batches()
        result.sqnr_float_vs_reference_db = _finite(sqnr_db(_outputs(pipe.spec.model, batches),
                                                            _outputs(reference.artifact, batches)))
    delegate = pipe.result_of("delegated")
    if delegate is not None and delegate.ok and delegate.graph is not None:
        g = delegate.graph
        inside = g.delegated_node_count()
        outside = sum(1 for n in g.nodes if n.kind not in ("input", "parameter", "output", "delegate"))
        result.delegated_ops, result.ops = inside, inside + outside
        result.share_delegated = inside / (inside + outside) if inside + outside else 0.0
    fuse = pipe.result_of("lowered")
    if fuse is not None and fuse.ok and fuse.graph is not None:
        result.fused_ops = fuse.graph.kind_counts().get("quantized_op", 0)


def _prepare_sensitivity(pipe, result: CellResult, limit: int) -> None:
    batches, labels = sensitivity_data(pipe.spec)
    base = _outputs(pipe.result_of("reference").artifact, batches)
    result.sensitivity_base_db = _finite(sqnr_db(_outputs(pipe.spec.model, batches), base))
    result.sensitivity_base_accuracy = accuracy(base, labels) if labels is not None else None
    result.sensitivity_layers = [x for x in layers_of(pipe.spec.model) if x not in pipe.config.skip_modules][:limit]


def run_layer(model: str, config: PipelineConfig, layer: str, warm: bool = False,
              explicit: Collection[str] = frozenset()) -> dict[str, Any]:
    """One sensitivity run: ``layer`` kept float (skipped), the rest quantized up to convert; float vs reference
    SQNR and accuracy on the sensitivity batches. What one loop pass of ``numerics.sensitivity`` computes.
    ``warm``: fork from this process's kept pipeline of the model (under pt2e it shares the trace)."""

    t0 = time.perf_counter()
    row: dict[str, Any] = {"layer": layer, "sqnr_db": None, "accuracy": None, "error": ""}
    try:
        spec = WARM.spec(model) if warm else load_model(model)
        batches, labels = sensitivity_data(spec)
        skipped = config.with_changes(skip_modules=tuple(config.skip_modules) + (layer,), until="convert")
        other = WARM.pipelines.start(spec, model, skipped, explicit)[0].run() if warm else \
            Pipeline(spec, skipped, explicit=explicit).run()
        if not other.ok:
            row["error"] = str(other.failed.error)
        else:
            out = _outputs(other.result_of("reference").artifact, batches)
            row["sqnr_db"] = _finite(sqnr_db(_outputs(spec.model, batches), out))
            row["accuracy"] = accuracy(out, labels) if labels is not None else None
    except Exception as exc:  # noqa: BLE001
        row["error"] = f"{type(exc).__name__}: {exc}"
    row["seconds"] = time.perf_counter() - t0
    return row


def finish_sensitivity(result: CellResult, rows: list[dict[str, Any]]) -> None:
    """Attach the layer runs to ``result`` as rows of ``numerics.sensitivity.SensitivityRow``'s fields (gain
    against everything quantized), most sensitive first, as ``quantviz compare`` orders them. Plain dicts: the
    driver of a sweep needs no torch."""
    nan = float("nan")
    out = []
    base, base_acc = result.sensitivity_base_db, result.sensitivity_base_accuracy
    for r in rows:
        db, acc = r.get("sqnr_db"), r.get("accuracy")
        out.append({"layer": r["layer"], "sqnr_db": nan if db is None else db,
                    "gain_db": db - base if db is not None and base is not None else nan,
                    "accuracy": acc, "accuracy_change": acc - base_acc if acc is not None and base_acc is not None
                    else None, "error": r.get("error", "")})
    out.sort(key=lambda s: -(s["gain_db"] if s["gain_db"] == s["gain_db"] else float("-inf")))
    result.sensitivity = out


def run_cell_job(model: str, ref: str, config: dict, cell: str, label: str, sensitivity: int,
                 explicit: tuple[str, ...] = (), on_stage: Callable[[str], None] = lambda stage: None
                 ) -> dict[str, Any]:
    """A warm worker's cell job (``quantviz.sweep.actors``): ``run_cell`` on the worker's kept model and
    pipelines, as a dict; ``model`` is the user's reference, ``ref`` the one the worker loads."""
    result = run_cell(ref, PipelineConfig(**config_args(config)), cell, label, sensitivity, on_stage=on_stage,
                      warm=True, explicit=explicit)
    result.model = model
    return result.to_dict()


def run_layer_job(ref: str, config: dict, layer: str, explicit: tuple[str, ...] = ()) -> dict[str, Any]:
    """A warm worker's sensitivity job: ``run_layer`` on the worker's kept model and pipelines."""
    return run_layer(ref, PipelineConfig(**config_args(config)), layer, warm=True, explicit=explicit)


def config_args(d: dict) -> dict:
    """A config dict (lists for tuple fields, as JSON has them) as PipelineConfig's arguments."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
