"""Run a pipeline's remaining stages in a background thread, and read its progress from another one.

A :class:`BackgroundRun` is a daemon thread calling ``Pipeline.run`` one stage at a time, so a reader (the app's
page, a script) can use a stage's result as soon as that stage has finished while later stages keep running;
:meth:`BackgroundRun.state` gives a consistent :class:`RunState` (done / failed / running / waiting per stage).
No Streamlit here: the app's caching and waiting glue is ``ui/runner.py``.

Example::

    from quantviz import Pipeline, load_model
    from quantviz.background import BackgroundRun

    run = BackgroundRun(Pipeline(load_model("sample:digits_cnn"))).start()
    run.wait_for("trace", timeout=60)      # True once trace has a result
    run.state().states["trace"]            # "done"
    pipe = run.view()                      # a snapshot to read while the worker goes on
    run.stop(); run.join()                 # ends the run after the current stage
    run.start()                            # Continue: runs the stages without a result
"""
from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field

from quantviz.pipeline import Pipeline, StageEvent

# A stage's state in a run (the app's rail marks them).
DONE, FAILED, RUNNING, WAITING, NOT_RUN = "done", "failed", "running", "waiting", "not run"


@dataclass(frozen=True)
class RunState:
    """A consistent copy of a run's progress, for one reading (one drawing of the app's page).

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
    stage_elapsed: float = 0.0  # seconds the current stage has run (a sign of life in long stages)

    @property
    def ready(self) -> tuple[str, ...]:
        """Stages with a result (ok or failed), in stage order."""
        return tuple(s for s in self.states if self.states[s] in (DONE, FAILED))

    def pending(self) -> tuple[str, ...]:
        """Stages the worker will still run (running first)."""
        return tuple(s for s in self.states if self.states[s] in (RUNNING, WAITING))


class RunReader:
    """What a run reads the same way wherever its stages run (a thread here, a worker process in
    ``quantviz.process_run``): the stages left, the wait for one, every stage's state at one moment. A subclass has
    ``pipe``, ``stopped_by_user`` and ``alive``."""

    pipe: Pipeline
    stopped_by_user: bool

    @property
    def alive(self) -> bool:
        raise NotImplementedError

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

    def todo(self) -> list[str]:
        """Stages up to ``config.until`` without a result, unless an earlier one failed."""
        if self.pipe.failed is not None:
            return []
        names = self.pipe.stage_names
        return [s for s in names[: names.index(self.pipe.config.until) + 1] if s not in self.pipe.results]

    def _run_state(self, results: dict, alive: bool, current: str | None, fraction: float, text: str,
                   stopping: bool, elapsed: float, finished: dict[str, float], stage_elapsed: float) -> RunState:
        """The RunState of one reading (taken under the subclass's lock): done / failed / running / waiting / not
        run per stage, and whether Stop left stages not run."""
        names = self.pipe.stage_names
        last = names.index(self.pipe.config.until)
        states = {}
        for i, s in enumerate(names):
            r = results.get(s)
            if r is not None:
                states[s] = DONE if r.ok else FAILED
            elif s == current:
                states[s] = RUNNING
            elif alive and i <= last and not stopping:
                states[s] = WAITING
            else:
                states[s] = NOT_RUN
        stopped = not alive and self.stopped_by_user and any(v == NOT_RUN for s, v in states.items()
                                                             if names.index(s) <= last) \
            and all(v != FAILED for v in states.values())
        return RunState(states, alive, current, fraction, text, alive and stopping, stopped, elapsed, finished,
                        stage_elapsed)


class BackgroundRun(RunReader):
    """One pipeline, its remaining stages run by a daemon thread; thread-safe to read from other threads
    (the app's page).

    The worker snapshots each stage's graph as the stage ends, before the result is visible, so the page never
    snapshots concurrently with the worker, and a stage's page shows its graph without waiting for a layout of
    the live artifact.

    Example::

        run = BackgroundRun(Pipeline(load_model("sample:digits_cnn"))).start()
        run.wait_for("trace", timeout=60)
        run.stop(); run.join()
    """

    stop_means = ("end the run: a stage running in a worker process (the runtime) is killed at once, others finish "
                  "first; what finished stays")  # what Stop does to this kind of run, in the app's words

    def __init__(self, pipe: Pipeline) -> None:
        self.pipe = pipe
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: str | None = None
        self._fraction, self._text = 0.0, ""
        self._t0 = 0.0
        self._stage_t0 = 0.0
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

    def retry(self) -> "BackgroundRun":
        """Run the failed stage again (its result dropped; the stages before it stay), e.g. after its worker process
        died (an abort, out of memory): a no-op while the worker runs."""
        with self._lock:
            if self.alive:
                return self
            failed = self.pipe.failed
            if failed is not None:
                self.pipe.results.pop(failed.name, None)
            self.error = None
        return self.start()

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

    # -- reading -----------------------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        """The worker thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def view(self) -> Pipeline:
        """A shallow copy of the pipeline with its own ``results`` dict: what the page reads while the worker
        adds results (iterating the live dict while the worker inserts would raise)."""
        snap = copy.copy(self.pipe)
        snap.results = dict(self.pipe.results)
        snap.on_event = lambda e: None
        return snap

    def state(self) -> RunState:
        """Every stage's state, the current stage's progress and the run's timings, read at one moment."""
        with self._lock:
            results = dict(self.pipe.results)
            alive = self.alive
            current = self._current if alive else None
            fraction, text = self._fraction, self._text
            finished = dict(self._finished_at)
            elapsed = time.perf_counter() - self._t0 if self._t0 else 0.0
            stage_elapsed = time.perf_counter() - self._stage_t0 if current and self._stage_t0 else 0.0
        return self._run_state(results, alive, current, fraction, text, self._stop.is_set(), elapsed, finished,
                               stage_elapsed)

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
                self._stage_t0 = time.perf_counter()
            elif e.kind == "progress":
                self._fraction, self._text = e.fraction, e.text
            elif e.kind == "end":  # nothing runs until the next stage starts (it may wait for TORCH_LOCK)
                self._finished_at[e.stage] = time.perf_counter() - self._t0
                self._current, self._fraction, self._text = None, 0.0, ""
