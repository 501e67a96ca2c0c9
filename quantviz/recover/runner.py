"""Where a recovery's trials run: in this process one after another (:class:`LocalEvaluator`), or on warm Ray
workers (:class:`RayEvaluator`: one actor per CPU, each with the model built and its base config traced before
the first trial, ``quantviz.sweep.actors``), and :func:`recover`, which ties the candidates, the search and an
evaluator together.

Both evaluators fork every change set from the pipelines their process kept (``quantviz.reuse``): the stages a
change set shares with an earlier run are not run again. A Ray worker that dies (the runtime aborts on some
programs) loses only the trial it was running (``Trial.crashed``) and is replaced. On Ray the driver imports no
torch: the workers build the model, and the first one to be warm tells the driver what it needs (a
:class:`~quantviz.recover.trial.Probe`: the data, its labels, the candidates).

Example::

    found = recover("sample:digits_cnn", PipelineConfig(flow="pt2e"), Target("sqnr", 38.0), budget=8,
                    on_trial=lambda t, n, total: print(n, t.key, t.sqnr_db))
    found.winner.flags, found.engine.reuse_share
"""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Collection

from quantviz.config import PipelineConfig
from quantviz.candidates import Candidate, Scope
from quantviz.recover.search import Recovery, search
from quantviz.recover.trial import Engine, Probe, Request, Target, Trial

OnTrial = Callable[[Trial, int, int], None]  # (trial, trials done, budget + 1)
JOB = "quantviz.recover.evaluate:evaluate_job"  # what a warm worker runs per request (resolved in the worker)
WARM = "quantviz.recover.evaluate:warm_session"


class LocalEvaluator:
    """Every request in this process, one after another (``quantviz recover --in-process``; the benchmark's
    sequential side)."""

    width = 1

    def __init__(self, model_ref: str, base_config: PipelineConfig, on_trial: OnTrial | None = None,
                 total: int = 0, explicit: Collection[str] = frozenset()) -> None:
        from quantviz.recover.evaluate import Session

        self.started = time.perf_counter()  # a recovery's wall time counts from here (the warm-up included)
        self.session = Session(model_ref, base_config, explicit=explicit)
        self.on_trial, self.total, self.done = on_trial, total, 0
        self.warm_seconds = self.session.warm()

    def probe(self) -> Probe:
        return self.session.probe

    def __call__(self, requests: list[Request]) -> list[Trial]:
        out = []
        for r in requests:
            trial = self.session.evaluate(list(r.candidates), r.phase)
            self.done += 1
            if self.on_trial:
                self.on_trial(trial, self.done, self.total)
            out.append(trial)
        return out

    def engine(self) -> Engine:
        return Engine("in-process", workers=1, warm_trace_seconds=[round(self.warm_seconds, 3)], workers_replaced=0)

    def close(self) -> None:
        pass


class RayEvaluator:
    """Every request on warm Ray actors, in parallel; results in request order.

    ``job(model_ref, base_config_dict, candidate_dicts, phase, explicit, on_stage=...) -> Trial dict`` runs one
    request in a worker and ``warm(model_ref, base_config_dict, explicit) -> {"trace_seconds", "probe"}`` starts one
    (functions or "module:name"; tests plant their own); ``explicit``: the fields the user set (a tuple), which the
    backend's defaults leave alone."""

    def __init__(self, model_ref: str, base_config: PipelineConfig, on_trial: OnTrial | None = None,
                 total: int = 0, workers: int | None = None, address: str | None = None,
                 num_cpus: int | None = None, job: Callable[..., dict] | str = JOB,
                 warm: Callable[..., Any] | str | None = WARM, memory_gib: float | None = 1.5,
                 explicit: Collection[str] = frozenset()) -> None:
        from quantviz.sweep.actors import WarmPool
        from quantviz.sweep.ray_setup import absolute_ref, import_ray, init_ray, model_refs

        self.started = time.perf_counter()  # a recovery's wall time counts from here (ray.init included)
        ray = import_ray()
        self.started_ray = not ray.is_initialized()
        self.staging = Path(tempfile.mkdtemp(prefix="quantviz_recover_"))
        if self.started_ray:
            refs, working_dir = model_refs([model_ref], address, self.staging)
            ref, self.init_seconds = refs[model_ref], init_ray(address, num_cpus, working_dir)
        else:
            ref, self.init_seconds = absolute_ref(model_ref), 0.0
        self.ray, self.ref, self.address = ray, ref, address
        self.base, self.explicit = base_config.to_dict(), tuple(sorted(explicit))
        self.job, self.on_trial, self.total, self.done = job, on_trial, total, 0
        self.pool = WarmPool(workers, warm=warm, warm_args=(ref, self.base, self.explicit) if warm else (),
                             memory_gib=memory_gib)
        self.width = self.pool.size

    def probe(self) -> Probe:
        """What the first warm worker learned of the model (its warm function's "probe")."""
        info = self.pool.first_info()
        result = info.get("warm_result") or {}
        if info.get("warm_error"):
            return Probe(self.ref, "", False, Scope(), [], info["warm_error"])
        return Probe.from_dict(result.get("probe", {}))

    def __call__(self, requests: list[Request]) -> list[Trial]:
        from quantviz.sweep.actors import Crash, Job

        for r in requests:
            self.pool.submit(Job(r.key, self.job, (self.ref, self.base, [c.to_dict() for c in r.candidates],
                                                   r.phase, self.explicit), affinity=self.ref))
        by_key = {r.key: r for r in requests}
        got: dict[str, Trial] = {}
        for job, value in self.pool.results():
            r = by_key[job.key]
            if isinstance(value, Crash):
                trial = Trial(tuple(c.id for c in r.candidates), r.phase, crashed=value.crashed, worker=value.worker,
                              error=f"{'crashed' if value.crashed else 'raised'}: {value.cause}",
                              seconds=value.seconds)
            else:
                trial = Trial.from_dict(value)
            got[job.key] = trial
            self.done += 1
            if self.on_trial:
                self.on_trial(trial, self.done, self.total)
        return [got[r.key] for r in requests]

    def engine(self) -> Engine:
        resources = self.ray.cluster_resources()
        info = self.pool.info()
        trace = [float(w["warm_result"].get("trace_seconds", 0.0)) for w in info
                 if isinstance(w.get("warm_result"), dict)]
        return Engine("ray", ray_version=self.ray.__version__, address=self.address or "embedded",
                      cluster_cpus=int(resources.get("CPU", 0)), workers=self.pool.size,
                      ray_init_seconds=round(self.init_seconds, 3), warm_seconds=[w["warm_seconds"] for w in info],
                      warm_trace_seconds=[round(t, 3) for t in trace], workers_replaced=self.pool.replaced,
                      workers_started=self.pool.size + self.pool.replaced)

    def close(self) -> None:
        self.pool.shutdown()
        if self.started_ray and self.ray.is_initialized():
            self.ray.shutdown()
        shutil.rmtree(self.staging, ignore_errors=True)


def reuse_figures(trials: list[Trial], warm_seconds: float = 0.0) -> dict[str, float]:  # Engine's stage_* fields
    """How much stage work reuse saved: stage-seconds run (the workers' warm-up traces included: work done once
    per worker so that every trial could skip it), stage-seconds taken from earlier pipelines, and the share of
    the work without reuse that was not done."""
    ran = sum(sum(t.stage_seconds.values()) for t in trials) + warm_seconds
    saved = sum(t.saved_seconds for t in trials)
    without = sum(sum(t.stage_seconds.values()) for t in trials) + saved
    return {"stage_seconds_run": round(ran, 3), "stage_seconds_reused": round(saved, 3),
            "stage_seconds_without_reuse": round(without, 3),
            "reuse_share": round(1 - ran / without, 4) if without else 0.0}


def make_evaluator(model_ref: str, config: PipelineConfig, budget: int, *, in_process: bool = False,
                   workers: int | None = None, address: str | None = None, num_cpus: int | None = None,
                   on_trial: OnTrial | None = None, explicit: Collection[str] = frozenset()
                   ) -> LocalEvaluator | RayEvaluator:
    """The evaluator ``recover`` uses: warm Ray workers (local, or the cluster at ``address``), or this process.
    ``explicit``: the fields the user set, which the backend's defaults leave alone (``with_backend_defaults``)."""
    if in_process:
        return LocalEvaluator(model_ref, config, on_trial, budget + 1, explicit)
    return RayEvaluator(model_ref, config, on_trial, budget + 1, workers, address, num_cpus, explicit=explicit)


def recover(model_ref: str, config: PipelineConfig, target: Target, budget: int = 16, *, in_process: bool = False,
            workers: int | None = None, address: str | None = None, num_cpus: int | None = None,
            on_trial: OnTrial | None = None, candidates: list[Candidate] | None = None,
            evaluator: Any = None, width: int | None = None, explicit: Collection[str] = frozenset()) -> Recovery:
    """Search the candidates ``config``'s flow and backend declare for ``model_ref`` (or ``candidates``) for the
    smallest change set meeting ``target``, on an evaluator (``make_evaluator``'s unless one is given: it is then
    the caller's to close). ``width``: change sets tried at once in the greedy phase (default: the evaluator's
    workers; the same width gives the same trials anywhere). Raises ValueError when the model cannot be built.
    ``engine["wall_seconds"]`` counts from the evaluator's start (``started``: Ray's start-up and the workers'
    warm-up included), a given evaluator's too. ``explicit``: the fields the user set; the backend's defaults apply
    to the others (``with_backend_defaults``), in the base and every trial."""
    from quantviz.flows import with_backend_defaults

    t0 = time.perf_counter()
    config = with_backend_defaults(config, explicit)[0]
    own = evaluator is None
    if evaluator is None:
        evaluator = make_evaluator(model_ref, config, budget, in_process=in_process, workers=workers,
                                   address=address, num_cpus=num_cpus, on_trial=on_trial, explicit=explicit)
    t0 = min(t0, getattr(evaluator, "started", t0))
    try:
        if candidates is None:
            probe = evaluator.probe()
            if probe.error:
                raise ValueError(f"the workers could not build {model_ref}: {probe.error}")
            candidates = probe.candidates
        found = search(config, candidates, target, evaluator, budget=budget,
                       width=width or getattr(evaluator, "width", 1))
        engine = evaluator.engine() if hasattr(evaluator, "engine") else Engine()
    finally:
        if own:
            evaluator.close()
    warm = sum(engine.warm_trace_seconds or [])
    found.engine = dataclasses.replace(engine, **reuse_figures(found.trials, warm),
                                       wall_seconds=round(time.perf_counter() - t0, 3), trials=len(found.trials))
    return found
