"""Run one change set through the whole flow to the runtime in this process and measure it: a
:class:`~quantviz.recover.trial.Trial`. Nothing here knows Ray: warm Ray actors call :func:`evaluate_job` (and
:func:`warm_session` once), the in-process evaluator calls :meth:`Session.evaluate`.

A :class:`Session` holds one model (built once) under one base config, and the pipelines to fork from
(``quantviz.reuse``): each change set starts from the kept pipeline sharing the most stages, so a layer kept
float re-runs from prepare, not from trace. The base trial also ranks the weighted layers by the blame table's
local error (``layer_scores``).

Example::

    session = Session("sample:digits_cnn", PipelineConfig(flow="pt2e"))
    base = session.evaluate([], "base")
    trial = session.evaluate([per_channel()], "single")
    trial.sqnr_db, trial.reused, trial.data      # 36.4, ['trace'], 'evaluation data: 12 batch(es) ...'
"""
from __future__ import annotations

import hashlib
import math
import os
import socket
import time
from typing import Any, Callable, Collection

from quantviz.config import ConfigError, PipelineConfig, config_flags
from quantviz.data import evaluation_data
from quantviz.flows import check, flow_of, with_backend_defaults
from quantviz.loading import load_model
from quantviz.pipeline import Pipeline, StageEvent
from quantviz.candidates import Candidate, Scope, combined_changes
from quantviz.recover.generate import candidates_for, scope_of
from quantviz.recover.trial import Phase, Probe, Trial
from quantviz.reuse import PipelineCache

BLAME_BATCHES = 2  # the base's blame table runs on this many evaluation batches (it only orders the first tries)
DIVERGENT_LSB = 1.0  # a runtime kernel off its reference op by more than this (given equal inputs) ranks first


def _finite(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


class Session:
    """One model under one base config in this process: the spec, the kept pipelines, the evaluations."""

    def __init__(self, model_ref: str, base_config: PipelineConfig, keep: int = 2,
                 explicit: Collection[str] = frozenset()) -> None:
        # the base as it runs: the backend's defaults applied but to the fields the user set (``explicit``), which
        # every trial keeps too (its candidates' changes are the user's choices from then on)
        self.explicit = frozenset(explicit)
        base_config = with_backend_defaults(base_config, self.explicit)[0]
        self.model_ref, self.base_config = model_ref, base_config
        self.spec = load_model(model_ref)
        self.scope = scope_of(self.spec)
        self.cache = PipelineCache(keep)
        data = evaluation_data(self.spec, base_config, flow_of(base_config).calibrates(base_config))
        self.data = data.describe()
        self.probe = Probe(self.spec.name, self.data, data.labelled, self.scope,
                           candidates_for(base_config, self.scope),
                           language_model=self.spec.language_model is not None and data.labelled)

    def warm(self, until: str = "trace") -> float:
        """Run the base config up to ``until`` (the stage every candidate shares) and keep it; the seconds."""
        t0 = time.perf_counter()
        pipe, _, _ = self.cache.start(self.spec, self.model_ref, self.base_config.with_changes(until=until),
                                      self.explicit)
        pipe.run()
        if pipe.ok:
            self.cache.keep_pipeline(self.model_ref, pipe)
        return time.perf_counter() - t0

    def evaluate(self, candidates: list[Candidate], phase: Phase,
                 on_stage: Callable[[str], None] = lambda stage: None) -> Trial:
        """The change set run to the runtime: SQNR float vs runtime, accuracy, the .pte, what it re-ran."""
        trial = Trial(tuple(c.id for c in candidates), phase, worker=f"{socket.gethostname()}:{os.getpid()}",
                      data=self.data)
        try:
            trial.changes = combined_changes(self.base_config, candidates)
            config = self.base_config.with_changes(**trial.changes)
            check(config)
        except (ConfigError, ValueError) as exc:
            trial.error = f"config: {exc}"
            return trial
        trial.flags = config_flags(config)
        trial.float_layers = len(config.skip_modules) - len(self.base_config.skip_modules)
        t0 = time.perf_counter()
        pipe, trial.reused, trial.saved_seconds = self.cache.start(self.spec, self.model_ref, config,
                                                                    self.explicit | set(trial.changes))
        pipe.on_event = lambda e: on_stage(e.stage) if isinstance(e, StageEvent) and e.kind == "start" else None
        try:
            pipe.run()
        finally:
            trial.seconds = time.perf_counter() - t0
        self._measure(pipe, trial)
        if phase == "base" and pipe.ok:
            trial.layer_scores, note = layer_scores(pipe, self.scope.layers)
            trial.notes += [note] if note else []
        if pipe.ok or phase == "base":
            self.cache.keep_pipeline(self.model_ref, pipe)
        return trial

    def _measure(self, pipe: Pipeline, trial: Trial) -> None:
        trial.stage_seconds = {name: round(r.seconds, 4) for name, r in pipe.results.items()
                               if name not in trial.reused}
        trial.calls = {name: list(r.calls) for name, r in pipe.results.items() if r.ok}
        failed = pipe.failed
        if failed is not None:
            err = failed.error
            trial.error = f"{failed.name}: {err.message if err is not None else 'failed'}"
        numerics = pipe.numerics()
        trial.sqnr_db = _finite(numerics.float_vs_runtime_sqnr_db)
        trial.float_vs_reference_db = _finite(numerics.float_vs_reference_sqnr_db)
        trial.reference_vs_runtime_db = _finite(numerics.reference_vs_runtime_sqnr_db)
        trial.float_accuracy = _finite(numerics.float_accuracy)
        trial.runtime_accuracy = _finite(numerics.runtime_accuracy)
        trial.float_perplexity = _finite(numerics.float_perplexity)
        trial.runtime_perplexity = _finite(numerics.runtime_perplexity)
        pte = pipe.pte_bytes()
        if pte is not None:
            trial.pte_bytes, trial.pte_sha256 = len(pte), hashlib.sha256(pte).hexdigest()
        trial.ok = pipe.ok and trial.sqnr_db is not None
        if trial.ok:
            _time(pipe, trial)


LATENCY_REPEAT = 10  # warm runs each trial's .pte is timed over (quantviz.timing; float side not timed)


def _time(pipe: Pipeline, trial: Trial) -> None:
    """The trial's .pte timed here with an ETDump: ``latency_ms`` (median) and its spread; untouched when nothing
    can run the program here (a backend's reference model computed the numbers)."""
    from quantviz.timing.measure import NotTimed, time_pipeline

    try:
        report = time_pipeline(pipe, repeat=LATENCY_REPEAT, with_float=False).report
    except NotTimed as why:
        trial.notes.append(f"latency: {why}")
        return
    trial.latency_ms = round(report.total.median_ms, 5)
    trial.latency_spread = f"{report.total.text()}, {report.profile.describe()}"


def layer_scores(pipe: Pipeline, layers: tuple[str, ...]) -> tuple[dict[str, float], str]:
    """Each weighted layer's local error on the base run, from the blame table: the noise-to-signal power its
    pattern adds (float -> reference: ``10^(-SQNR/10)`` at its output minus at the pattern before it), plus 1 for
    a runtime kernel that is off its reference op by more than 1 LSB given equal inputs (it ranks first).
    Returns (layer -> score, a note when the table could not be made)."""
    from quantviz.numerics.blame import blame_table

    try:
        batches = evaluation_data(pipe.spec, pipe.config).batches[:BLAME_BATCHES]
        rows = sorted(blame_table(pipe, batches), key=lambda r: r.order)
    except Exception as exc:  # noqa: BLE001 - ranking only orders the first tries: go on without it
        return {}, f"no blame table ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); " \
                   "per-layer candidates are tried in model order"
    scores: dict[str, float] = {}
    before = 0.0
    for r in rows:
        db = r.float_vs_reference_sqnr_db
        if db != db:  # NaN: no output quantize to measure at
            continue
        nsr = 0.0 if db == math.inf else 10 ** (-db / 10)
        local = max(0.0, nsr - before)
        before = nsr
        lsb = r.runtime_local_max_lsb
        local += 1.0 if lsb == lsb and lsb > DIVERGENT_LSB else 0.0
        layer = owner(r.module, layers)
        if layer is not None:
            scores[layer] = max(scores.get(layer, 0.0), local)
    return scores, ""


def owner(module: str, layers: tuple[str, ...]) -> str | None:
    """The weighted layer a pattern's module path belongs to: itself, or the layer it is inside."""
    for layer in layers:
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


# -- what a warm Ray actor calls ---------------------------------------------------------------------------------
_SESSIONS: dict[tuple[str, str, tuple[str, ...]], Session] = {}


def session(model_ref: str, base_config: dict, explicit: tuple[str, ...] = ()) -> Session:
    """This process's Session for (model, base config, the fields the user set), made on first use."""
    import json

    key = (model_ref, json.dumps(base_config, sort_keys=True), tuple(explicit))
    if key not in _SESSIONS:
        _SESSIONS.clear()  # one model at a time per worker
        _SESSIONS[key] = Session(model_ref, PipelineConfig(**_config_args(base_config)), explicit=explicit)
    return _SESSIONS[key]


def _config_args(d: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def warm_session(model_ref: str, base_config: dict, explicit: tuple[str, ...] = ()) -> dict:
    """A warm actor's start: libraries imported and the flow warmed up on a tiny model, the model built, the base
    config traced. Returns the seconds the trace took (work that reuse then saves on every trial) and the
    :class:`Probe` (what the driver needs to know of the model), or the error that kept the model from loading."""
    from quantviz.sweep.actors import warm_libraries

    warm_libraries((base_config.get("flow") or "fx",))
    try:
        s = session(model_ref, base_config, explicit)
    except Exception as exc:  # noqa: BLE001 - LoadError, a bad config: the driver says so
        return {"trace_seconds": 0.0, "probe": Probe(model_ref, "", False, Scope(), [],
                                                     f"{type(exc).__name__}: {exc}").to_dict()}
    return {"trace_seconds": s.warm(), "probe": s.probe.to_dict()}



def evaluate_job(model_ref: str, base_config: dict, candidates: list[dict], phase: str,
                 explicit: tuple[str, ...] = (), on_stage: Callable[[str], None] = lambda stage: None) -> dict:
    """One change set in this process (a warm actor's job): the Trial as a dict."""
    s = session(model_ref, base_config, explicit)
    return s.evaluate([Candidate.from_dict(c) for c in candidates], phase, on_stage).to_dict()  # type: ignore[arg-type]
