"""Run or reuse pipelines: one per (model, config), kept across reruns and sessions; stages run off the page.

By default each run is a :class:`quantviz.process_run.ProcessRun`: its stages run in a worker process of its own
(forked from the warm server, torch imported there once), so no session waits for another's stage, Stop kills a
stage for real, and an abort or out-of-memory kill ends only that worker (the stage's page names the signal and
offers a re-run). A new config for a known model takes that model's idle worker, which forks its pipeline
(``ProcessRun.take_worker``, ``Pipeline.fork``): only the stages the change affects run again, and choosing the old
config again is a fork too. The run a session leaves for another config is stopped only when no other session shows
it (a stage it was running is killed, and the new config starts in a new worker from trace: artifacts do not cross
processes); one session never stops another's run. A stage's page can be opened as soon as that stage has finished
while later stages keep running::

    run = get_run(choice.key, choice.loader, config, choice.ref)   # starts the worker, or reuses the running one
    run.wait_for("trace", timeout=0.2)                 # True once trace has a result
    state = run.state()                                 # done / running / waiting per stage, progress text
    pipe = run.view()                                   # a snapshot the page reads while the worker goes on
    run.stop()                                          # ends the run now (a running stage is killed)

With ``QUANTVIZ_SESSION_WORKERS=0`` each run is a :class:`quantviz.background.BackgroundRun` (a daemon thread in the
app's process, every stage under ``TORCH_LOCK``: sessions take turns). A new config forks the model's pipeline in
the process; a thread still running on the old pipeline is stopped and waited for first (its current stage
finishes): stages that change their input in place (calibrate, convert, edge) must never run twice at once on an
artifact the two pipelines share. The old pipeline resumes where it stopped when its config is chosen again; a run
ended with Stop stays stopped until Continue.
"""
from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Collection, Iterator, Union

import streamlit as st

from quantviz import ModelSpec, Pipeline, PipelineConfig
from quantviz.background import WAITING, BackgroundRun, RunState
from quantviz.flows import with_backend_defaults
from quantviz.loading import check_in_worker, load_model
from quantviz.process_run import STOP_GRACE, ProcessRun, RemotePipeline, build_own_model
from quantviz.torch_lock import TORCH_LOCK
from quantviz.workers import warm
from ui.state import SESSION_ID, STAGE

MAX_PIPELINES = 12
MAX_WORKERS = 6  # runs kept in session-worker mode: each is a process holding its model and artifacts

Run = Union[BackgroundRun, ProcessRun]


def session_workers() -> bool:
    """True (the default) unless ``QUANTVIZ_SESSION_WORKERS=0``: every run in a worker process of its own
    (``ProcessRun``); with 0, in a thread of the app's process (``BackgroundRun``)."""
    return os.environ.get("QUANTVIZ_SESSION_WORKERS", "1") != "0"


@st.cache_resource(show_spinner=False)
def pipeline_store() -> dict[tuple[str, PipelineConfig], Run]:
    """Runs by (model key, config), kept across reruns and sessions."""
    return {}


@st.cache_resource(show_spinner=False)
def warm_workers() -> bool:
    """Start the worker processes' fork server once per app (it imports torch and the runtime in the background), so a
    session's first model check or runtime run pays a fork, not torch's import."""
    threading.Thread(target=warm, daemon=True, name="quantviz-warm-workers").start()
    return True


@st.cache_resource(show_spinner=False)
def load_spec(model_key: str, _loader: Callable[[], ModelSpec]) -> ModelSpec:
    return _loader()


def get_run(model_key: str, loader: Callable[[], ModelSpec], config: PipelineConfig,
            ref: str | None = None, explicit: Collection[str] = frozenset()) -> Run:
    """The run for (model, config), started when it has stages left (and Stop did not end it). A user's Python file
    (``ref`` ending in ``.py:factory``) is first loaded in a worker process (:func:`checked_in_worker`): one that does
    not load says why at once, whatever runs elsewhere. ``explicit``: the fields the user set, which the backend's
    defaults leave alone (``with_backend_defaults``); the runs are kept by the config that runs.

    Example::

        run = get_run("sample:digits_cnn", lambda: load_model("sample:digits_cnn"), PipelineConfig())
    """
    store = pipeline_store()
    sidebar, explicit = config, frozenset(explicit)
    config = with_backend_defaults(sidebar, explicit)[0]  # the config that runs
    key = (model_key, config)
    run = store.get(key)
    if session_workers() and ref is not None:
        return _process_run(store, key, ref, sidebar, explicit)
    if run is None:
        if ref is not None and ".py:" in ref and not any(mk == model_key for mk, _ in store):
            checked_in_worker(model_key, ref)  # raises LoadError
        run = BackgroundRun(_new_pipeline(store, model_key, loader, sidebar, explicit))
        while len(store) >= MAX_PIPELINES:
            store.pop(next(iter(store))).stop(by_user=False)
        store[key] = run
    others = [r for (mk, c), r in store.items() if mk == model_key and c != config and r.alive]
    for other in others:  # one worker per model at a time: they may share artifacts changed in place
        other.stop(by_user=False)
    if others:
        with st.spinner("Finishing the current stage of the previous configuration…"):
            for other in others:
                other.join()
    if not run.stopped_by_user:
        run.start()
    return run


@dataclass
class Viewers:
    """Which sessions show which run (a session shows one run at a time): a config change stops only the runs no
    session shows any more, so one session never stops another's."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    by_run: dict[tuple[str, PipelineConfig], set[str]] = field(default_factory=dict)  # run key -> session ids

    def show(self, session: str, key: tuple[str, PipelineConfig]) -> list[tuple[str, PipelineConfig]]:
        """``session`` now shows ``key``: the runs it showed before that no session shows any more."""
        with self.lock:
            left = []
            for other, sessions in self.by_run.items():
                if other != key and session in sessions:
                    sessions.discard(session)
                    if not sessions:
                        left.append(other)
            self.by_run.setdefault(key, set()).add(session)
            return left

    def shown(self, key: tuple[str, PipelineConfig]) -> bool:
        with self.lock:
            return bool(self.by_run.get(key))


@st.cache_resource(show_spinner=False)
def viewers() -> Viewers:
    return Viewers()


def _process_run(store: dict, key: tuple[str, PipelineConfig], ref: str, sidebar: PipelineConfig,
                 explicit: frozenset[str]) -> ProcessRun:
    """The run of ``key`` in a worker process of its own, started (the model loaded there: a LoadError says why it
    does not load). The run this session showed before, of the same model, is stopped when no other session shows
    it (2 cores: a config change ends the old config's run, as it did in threads; another session's run goes on).
    A run without a worker takes the idle worker of the model's other config, one that no session shows first
    (``ProcessRun.take_worker``): the stages both configs share stay done, as a fork in one process would keep
    them."""
    run = store.get(key)
    if run is None:
        loader = partial(build_own_model, sidebar) if ref == sidebar.flow else partial(load_model, ref)
        run = ProcessRun(loader, sidebar, explicit, name=ref)
        while len(store) >= MAX_WORKERS:
            old = store.pop(next(iter(store)))
            old.stop(by_user=False)
            if isinstance(old, ProcessRun):
                old.close()
        store[key] = run
    shown = viewers()
    for left in shown.show(st.session_state[SESSION_ID], key):
        other = store.get(left)
        if other is not None and left[0] == key[0] and other.alive:
            other.stop(by_user=False)  # a stage running is killed; between stages it just starts no other
            other.join(STOP_GRACE + 1.0)
    if run.worker_pid is None:
        # a run no session shows gives its worker first; a shown one keeps its results on screen (a request of its
        # session makes its artifacts again in a new worker). Sessions whose tab closed never leave ``shown``
        idle = [(shown.shown(k), r) for k, r in store.items() if k[0] == key[0] and k != key
                and isinstance(r, ProcessRun) and r.worker_pid is not None and not r.alive]
        if idle:
            with st.spinner("Forking the pipeline of the previous configuration in its worker…"):
                run.take_worker(min(idle, key=lambda pair: pair[0])[1])
    try:
        with st.spinner("Loading the model in its worker process…"):
            run.loaded()
    except Exception:
        store.pop(key, None)  # asked again on the next rerun (the file may be fixed)
        run.close()
        raise
    if not run.stopped_by_user:
        run.start()
    return run


@st.cache_resource(show_spinner="Loading the model in a worker process…")
def checked_in_worker(model_key: str, ref: str) -> str:
    """The model's name once it loaded in a worker process (kept), else LoadError (not kept: asked again)."""
    return check_in_worker(ref)


def retry_failed(pipe: Pipeline) -> None:
    """Run ``pipe``'s failed stage again (``pipe`` is a page's view of a stored run; a button's callback)."""
    for run in pipeline_store().values():
        if run.pipe.spec is pipe.spec and run.pipe.config == pipe.config:
            run.retry()


def _new_pipeline(store: dict, model_key: str, loader: Callable[[], ModelSpec],
                  config: PipelineConfig, explicit: frozenset[str]) -> Pipeline:
    """A fork of the model's most complete known pipeline (its worker stopped first), else a fresh one; for the
    sidebar's ``config`` with the backend's defaults but to the fields in ``explicit``."""
    known = [r for (mk, _), r in store.items() if mk == model_key]
    if not known:
        # load_model waits for TORCH_LOCK itself (a model built mid-trace fails); here the wait gets a caption
        with holding_torch("Waiting for the running stage of the previous model to end before loading this one…"):
            return Pipeline(load_spec(model_key, loader), config, explicit=explicit)
    base = max(known, key=lambda r: len(r.pipe.results))
    if base.alive:
        base.stop(by_user=False)
        with st.spinner("Finishing the current stage of the previous configuration…"):
            base.join()
    pipe = base.pipe.fork(config, explicit)
    pipe.on_event = lambda e: None
    return pipe


def pick_stage(run: Run) -> str:
    """The stage to show, kept in ``st.session_state[STAGE]``: the chosen one when it has a result or will have
    one (running or waiting), else the last stage with a result.

    Example::

        stage = pick_stage(get_run(choice.key, choice.loader, config))
    """
    stage = st.session_state[STAGE]
    s = run.state()
    if stage in run.pipe.flow.absent:
        return stage  # a stage this flow does not have: its page says why
    if stage not in s.ready and stage not in s.pending():
        stage = s.ready[-1] if s.ready else run.pipe.stage_names[0]  # the failed stage, or the last that ran
    st.session_state[STAGE] = stage
    return stage


def wait_for_stage(run: Run, stage: str) -> bool:
    """Block, showing the worker's progress, until ``stage`` has a result or the run ended; True when it has one.

    Example::

        if wait_for_stage(run, "trace"):
            stage_page(run.view(), "trace", ref)
    """
    if stage not in run.pipe.results and run.alive:
        slot = st.empty()
        while not run.wait_for(stage, 0.1):
            s = run.state()
            slot.progress(min(1.0, s.fraction), text=f"Waiting for **{stage}** · " + (progress_text(s) or "starting"))
        slot.empty()
    return stage in run.pipe.results


def progress_text(s: RunState) -> str:
    """``running: calibrate (calibration batch 3/10, 12 s) · waiting: convert, capture`` (empty when idle): the
    stage's own progress text and how long it has run."""
    parts = []
    if s.current:
        took = f", {s.stage_elapsed:.0f} s" if s.stage_elapsed >= 1 else ""  # a sign of life in long stages
        parts.append(f"running: **{s.current}**" + (f" ({s.text}{took})" if s.text else f" ({took[2:]})" if took
                                                     else ""))
    waiting = [name for name in s.states if s.states[name] == WAITING]
    if waiting:
        parts.append("waiting: " + ", ".join(waiting))
    if s.stopping:
        parts.append("stopping after this stage")
    return " · ".join(parts)


@contextlib.contextmanager
def torch_turn(pipe: Pipeline, stage: str) -> Iterator[None]:
    """Hold ``TORCH_LOCK`` while drawing the page of a stage whose record says its page runs torch (the ledger's
    fusion patterns and what-if, numerics; ``Stage.page_runs_torch``), waiting with a caption for the worker's
    current stage to end; other pages draw at once.

    Example::

        with torch_turn(run.pipe, stage):
            stage_page(run.view(), stage, choice.ref)
    """
    if stage not in pipe.stage_names or not pipe.stage(stage).page_runs_torch:
        yield
        return
    with holding_torch_here(pipe, "Waiting for the running stage to end: this page runs torch itself (torch.export "
                                  "and fx tracing are not thread-safe)…"):
        yield


@contextlib.contextmanager
def holding_torch_here(pipe: Pipeline, waiting: str) -> Iterator[None]:
    """``holding_torch(waiting)`` when ``pipe`` lives in the app's process (threads); nothing for a session worker's
    pipeline (its worker takes turns itself)."""
    if isinstance(pipe, RemotePipeline):
        yield
        return
    with holding_torch(waiting):
        yield


@contextlib.contextmanager
def holding_torch(waiting: str) -> Iterator[None]:
    """Hold ``TORCH_LOCK`` for the block; while a worker's stage holds it, show ``waiting`` as a caption.

    Example::

        with holding_torch("Waiting for the running stage to end before loading the model…"):
            spec = loader()
    """
    slot = None
    if not TORCH_LOCK.acquire(blocking=False):
        slot = st.empty()
        while not TORCH_LOCK.acquire(timeout=0.25):  # an element each turn: a click elsewhere still reruns
            slot.caption(waiting)
    try:
        if slot is not None:
            slot.empty()
        yield
    finally:
        TORCH_LOCK.release()
