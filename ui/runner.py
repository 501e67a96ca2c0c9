"""Run or reuse pipelines: one per (model, config), kept across reruns; stages run in a background thread.

Each pipeline runs in a :class:`BackgroundRun` (a daemon thread calling ``Pipeline.run``), so a stage's page can
be opened as soon as that stage has finished while later stages keep running::

    run = get_run(choice.key, choice.loader, config)   # starts the worker, or reuses the running one
    run.wait_for("trace", timeout=0.2)                 # True once trace has a result
    state = run.state()                                 # done / running / waiting per stage, progress text
    pipe = run.view()                                   # a snapshot the page reads while the worker goes on
    run.stop()                                          # ends the run after the current stage

A new config for a known model forks that model's pipeline (``Pipeline.fork``), so only the stages the change
affects run again. A worker still running on the old pipeline is stopped and waited for first (its current
stage finishes): stages that change their input in place (calibrate, convert, edge) must never run twice at
once on an artifact the two pipelines share. The old pipeline resumes where it stopped when its config is
chosen again; a run ended with Stop stays stopped until Continue.
"""
from __future__ import annotations

import contextlib
import copy
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import streamlit as st

from quantviz import ModelSpec, Pipeline, PipelineConfig
from quantviz.pipeline import StageEvent
from quantviz.torch_lock import TORCH_LOCK

MAX_PIPELINES = 12

# Stage states on the rail.
DONE, FAILED, RUNNING, WAITING, NOT_RUN = "done", "failed", "running", "waiting", "not run"


@dataclass(frozen=True)
class RunState:
    """A consistent copy of a run's progress, for one drawing of the page.

    Example::

        s = run.state()
        s.states["trace"]   # "done"
        s.ready             # ("trace", "prepare"): stages with a result, in order
    """

    states: dict[str, str]  # stage -> DONE / FAILED / RUNNING / WAITING / NOT_RUN, in the flow's order
    running: bool  # the worker is alive
    current: str | None = None  # the stage running now
    fraction: float = 0.0  # of the current stage, from its progress events
    text: str = ""  # the current stage's last progress text
    stopping: bool = False  # Stop was pressed; the current stage finishes
    stopped: bool = False  # Stop ended the run before its last stage
    elapsed: float = 0.0  # seconds since the worker started
    finished_at: dict[str, float] = field(default_factory=dict)  # stage -> seconds after start it finished

    @property
    def ready(self) -> tuple[str, ...]:
        """Stages with a result (ok or failed), in stage order."""
        return tuple(s for s in self.states if self.states[s] in (DONE, FAILED))

    def pending(self) -> tuple[str, ...]:
        """Stages the worker will still run (running first)."""
        return tuple(s for s in self.states if self.states[s] in (RUNNING, WAITING))


class BackgroundRun:
    """One pipeline, its remaining stages run by a daemon thread; thread-safe to read from the page.

    The worker snapshots each stage's graph as the stage ends, before the result is visible, so the page never
    snapshots concurrently with the worker, and a stage's page shows its graph without waiting for a layout of
    the live artifact.

    Example::

        run = BackgroundRun(Pipeline(load_model("sample:digits_cnn"))).start()
        run.wait_for("trace", timeout=60)
        run.stop(); run.join()
    """

    def __init__(self, pipe: Pipeline) -> None:
        self.pipe = pipe
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: str | None = None
        self._fraction, self._text = 0.0, ""
        self._t0 = 0.0
        self._finished_at: dict[str, float] = {}
        self.stopped_by_user = False
        self.error: BaseException | None = None  # an exception that escaped Pipeline.run (a bug)

    # -- control -----------------------------------------------------------------------------------------------
    def start(self) -> "BackgroundRun":
        """Start the worker (again) on the stages without a result; a no-op while it runs or nothing is left."""
        with self._lock:
            if self.alive or self.error is not None or not self.todo():
                return self
            self._stop.clear()
            self.stopped_by_user = False
            self._t0 = time.perf_counter()
            self._thread = threading.Thread(target=self._work, daemon=True,
                                            name=f"quantviz-run-{self.pipe.spec.name}")
            self._thread.start()
        return self

    def stop(self, by_user: bool = True) -> None:
        """End the run after the current stage; what finished stays."""
        self.stopped_by_user = self.stopped_by_user or by_user
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker to end; True when it has."""
        t = self._thread
        if t is not None:
            t.join(timeout)
        return not self.alive

    def wait_for(self, stage: str, timeout: float) -> bool:
        """Wait up to ``timeout`` s for ``stage`` to have a result; True when it has (or never will)."""
        end = time.monotonic() + timeout
        while True:
            if stage in self.pipe.results or not self.alive:
                return True
            left = end - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(0.05, left))

    # -- reading -----------------------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def todo(self) -> list[str]:
        """Stages up to ``config.until`` without a result, unless an earlier one failed."""
        if self.pipe.failed is not None:
            return []
        names = self.pipe.stage_names
        return [s for s in names[: names.index(self.pipe.config.until) + 1] if s not in self.pipe.results]

    def view(self) -> Pipeline:
        """A shallow copy of the pipeline with its own ``results`` dict: what the page reads while the worker
        adds results (iterating the live dict while the worker inserts would raise)."""
        snap = copy.copy(self.pipe)
        snap.results = dict(self.pipe.results)
        snap.on_event = lambda e: None
        return snap

    def state(self) -> RunState:
        with self._lock:
            results = dict(self.pipe.results)
            alive = self.alive
            current = self._current if alive else None
            fraction, text = self._fraction, self._text
            finished = dict(self._finished_at)
            elapsed = time.perf_counter() - self._t0 if self._t0 else 0.0
        names = self.pipe.stage_names
        last = names.index(self.pipe.config.until)
        states = {}
        for i, s in enumerate(names):
            r = results.get(s)
            if r is not None:
                states[s] = DONE if r.ok else FAILED
            elif s == current:
                states[s] = RUNNING
            elif alive and i <= last and not self._stop.is_set():
                states[s] = WAITING
            else:
                states[s] = NOT_RUN
        stopped = not alive and self.stopped_by_user and any(v == NOT_RUN for s, v in states.items()
                                                             if names.index(s) <= last) \
            and all(v != FAILED for v in states.values())
        return RunState(states, alive, current, fraction, text, alive and self._stop.is_set(), stopped,
                        elapsed, finished)

    # -- the worker --------------------------------------------------------------------------------------------
    def _work(self) -> None:
        self.pipe.on_event = self._on_event
        try:
            for stage in self.todo():  # each stage runs under TORCH_LOCK (Pipeline._run_stage)
                self.pipe.run(until=stage, should_stop=self._stop.is_set)
                if stage not in self.pipe.results or not self.pipe.results[stage].ok:
                    break  # stopped, or the stage failed
                time.sleep(0.02)  # between stages, a page or another model waiting for TORCH_LOCK gets its turn
        except BaseException as exc:  # noqa: BLE001 - kept for the page; the thread must not die silently
            self.error = exc
        finally:
            self.pipe.on_event = lambda e: None
            with self._lock:
                self._current = None

    def _on_event(self, e: StageEvent) -> None:
        if e.kind == "end" and e.result is not None:
            try:
                e.result.graph  # snapshot here, before the result is stored where the page can see it
            except Exception:  # noqa: BLE001 - the page shows the failure when it reads the graph
                pass
        with self._lock:
            if e.kind == "start":
                self._current, self._fraction, self._text = e.stage, 0.0, ""
            elif e.kind == "progress":
                self._fraction, self._text = e.fraction, e.text
            elif e.kind == "end":  # nothing runs until the next stage starts (it may wait for TORCH_LOCK)
                self._finished_at[e.stage] = time.perf_counter() - self._t0
                self._current, self._fraction, self._text = None, 0.0, ""


@st.cache_resource(show_spinner=False)
def pipeline_store() -> dict[tuple[str, PipelineConfig], BackgroundRun]:
    """Runs by (model key, config), kept across reruns and sessions."""
    return {}


@st.cache_resource(show_spinner=False)
def load_spec(model_key: str, _loader: Callable[[], ModelSpec]) -> ModelSpec:
    return _loader()


def get_run(model_key: str, loader: Callable[[], ModelSpec], config: PipelineConfig) -> BackgroundRun:
    """The run for (model, config), started when it has stages left (and Stop did not end it).

    Example::

        run = get_run("sample:digits_cnn", lambda: load_model("sample:digits_cnn"), PipelineConfig())
    """
    store = pipeline_store()
    key = (model_key, config)
    run = store.get(key)
    if run is None:
        run = BackgroundRun(_new_pipeline(store, model_key, loader, config))
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


def _new_pipeline(store: dict, model_key: str, loader: Callable[[], ModelSpec],
                  config: PipelineConfig) -> Pipeline:
    """A fork of the model's most complete known pipeline (its worker stopped first), else a fresh one."""
    known = [r for (mk, _), r in store.items() if mk == model_key]
    if not known:
        # load_model waits for TORCH_LOCK itself (a model built mid-trace fails); here the wait gets a caption
        with holding_torch("Waiting for the running stage of the previous model to end before loading this one…"):
            return Pipeline(load_spec(model_key, loader), config)
    base = max(known, key=lambda r: len(r.pipe.results))
    if base.alive:
        base.stop(by_user=False)
        with st.spinner("Finishing the current stage of the previous configuration…"):
            base.join()
    pipe = base.pipe.fork(config)
    pipe.on_event = lambda e: None
    return pipe


def pick_stage(run: BackgroundRun) -> str:
    """The stage to show, kept in ``st.session_state.stage``: the chosen one when it has a result or will have
    one (running or waiting), else the last stage with a result.

    Example::

        stage = pick_stage(get_run(choice.key, choice.loader, config))
    """
    stage = st.session_state.stage
    s = run.state()
    if stage in run.pipe.flow.absent:
        return stage  # a stage this flow does not have: its page says why
    if stage not in s.ready and stage not in s.pending():
        stage = s.ready[-1] if s.ready else run.pipe.stage_names[0]  # the failed stage, or the last one that ran
    st.session_state.stage = stage
    return stage


def wait_for_stage(run: BackgroundRun, stage: str) -> bool:
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
    """``running: calibrate (calibration batch 3/10) · waiting: convert, capture`` (empty when idle)."""
    parts = []
    if s.current:
        parts.append(f"running: **{s.current}**" + (f" ({s.text})" if s.text else ""))
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
    with holding_torch("Waiting for the running stage to end: this page runs torch itself (torch.export and fx "
                       "tracing are not thread-safe)…"):
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
