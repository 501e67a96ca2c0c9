"""Run a pipeline in its own long-lived worker process, and read its progress and results from the caller.

A :class:`ProcessRun` has the interface of :class:`~quantviz.background.BackgroundRun` as the app uses it (start,
stop, retry, join, alive, stopped_by_user, state, wait_for, view, pipe), but its stages run in a worker process
forked from the warm server of :mod:`quantviz.workers` (torch and the runtime imported once, there): runs in one
process never wait for each other's ``TORCH_LOCK``, Stop kills a stage for real, and a native abort or an
out-of-memory kill ends only that worker. The caller holds a :class:`RemotePipeline`: the flow, the config and a
light copy of every finished stage's result (graph, error with its fix, seconds, calls, notes, metrics,
diagnostics, table; never the artifact). What needs the live artifacts (numerics, latency, ledger what-ifs, the
.pte, reproduce.py) is a typed request the worker answers (:class:`PipelineCall`, :func:`on_worker`).

When the worker is gone (Stop killed it, or it died) the stages already done stay visible; Continue (or a re-run of
the failed stage) starts a new worker that makes the earlier stages' artifacts again from the start (the pipeline's
artifacts live only in memory) and then runs the stages without a result.

Example::

    from functools import partial
    from quantviz import PipelineConfig, load_model
    from quantviz.process_run import ProcessRun, on_worker

    run = ProcessRun(partial(load_model, "sample:digits_cnn"), PipelineConfig()).start()
    run.wait_for("trace", timeout=60)         # True once trace has a result
    run.state().states["trace"]               # "done"
    run.pipe.results["trace"].graph           # the GraphView, copied from the worker
    run.join(); run.pipe.pte_bytes()          # the .pte, asked of the worker
    run.stop(); run.close()                   # Stop kills a running stage; close ends the worker
"""
from __future__ import annotations

import itertools
import os
import pickle
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Literal

from quantviz.background import RunReader, RunState
from quantviz.config import PipelineConfig
from quantviz.errors import LoadError, StageError
from quantviz.pipeline import Pipeline, StageEvent, StageResult
from quantviz.workers import LAST_LINES, WorkerDied, WorkerError, _context, _Process, _read_lines, allow_children

LOAD_TIMEOUT = 600.0  # seconds a worker may take to load the model before the caller gives up
SWITCH_TIMEOUT = 60.0  # seconds a worker handed to another config may take to fork its pipeline for it
KEEP_PIPELINES = 3  # pipelines of other configs a worker keeps to fork from (their artifacts stay in its memory)
PROGRESS_EVERY = 0.1  # seconds between two progress messages of one request (a request's own progress)
STOP_GRACE = 0.5  # seconds after Stop between stages before a stage that started meanwhile is killed


@dataclass(frozen=True)
class SpecInfo:
    """What the caller knows of the model loaded in the worker (the model itself stays there).

    Example::

        run.loaded(); run.pipe.spec.name   # "digits_cnn"
    """

    name: str
    description: str = ""
    measured_on: str = ""  # what evaluation_data(spec, config, ...).describe() says, computed in the worker


@dataclass(frozen=True)
class PipelineCall:
    """A request the worker answers on its live pipeline: ``fn(pipe, *args, **kwargs)``; ``fn`` a module-level
    function (it travels by name), the answer must pickle.

    Example::

        run.pipe.ask(PipelineCall(compare, (), {"sensitivity_layers": 0}))   # a NumericsReport
    """

    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    progress: bool = False  # fn takes ``progress=(fraction, text) -> None``: the worker streams it to the caller

    def answer(self, pipe: Pipeline, progress: Callable[[float, str], None] | None = None) -> Any:
        kwargs = dict(self.kwargs, progress=progress) if self.progress and progress is not None else self.kwargs
        return self.fn(pipe, *self.args, **kwargs)


def pte_bytes_of(pipe: Pipeline) -> bytes | None:
    """``pipe.pte_bytes()`` as a module-level function (a :class:`PipelineCall`'s ``fn``)."""
    return pipe.pte_bytes()


class RemotePipeline(Pipeline):
    """The caller's side of a pipeline living in a worker: the flow, config and backend resolved here (no stage runs
    here), ``results`` holding light copies of the worker's results (``artifact`` None), ``spec`` a
    :class:`SpecInfo`. What needs an artifact goes to the worker (:meth:`ask`).

    Example::

        pipe = run.pipe
        pipe.results["convert"].graph.kind_counts()
        pipe.ask(PipelineCall(reproduce_script_for, ("sample:digits_cnn",)))
    """

    def __init__(self, spec: SpecInfo, config: PipelineConfig, explicit: Collection[str] = frozenset(),
                 ask: Callable[..., Any] | None = None) -> None:
        super().__init__(spec, config, explicit=explicit)  # type: ignore[arg-type]
        self._ask = ask
        self.precomputed_ledger: Any = None  # the worker's pattern ledger (quantviz.why.ledger.build_ledger)
        self.methods: list[Any] = []  # the runtime stage's MethodRun records, copied from the worker

    def ask(self, request: PipelineCall, timeout: float | None = None,
            on_progress: Callable[[float, str], None] | None = None) -> Any:
        """The worker's answer to ``request``; :class:`WorkerError` when it raised there, :class:`WorkerDied` when
        the worker is gone. ``on_progress`` is called here, in the asking thread, with the request's own progress
        (``request.progress``)."""
        if self._ask is None:
            raise WorkerDied("this pipeline", None, ["no worker holds this pipeline"])
        return self._ask(request, timeout, on_progress)

    def pte_bytes(self) -> bytes | None:
        program = self.results.get(self.flow.roles.get("program", ""))
        return self.ask(PipelineCall(pte_bytes_of)) if program is not None and program.ok else None

    def reference_module(self) -> Any:
        return None  # lives in the worker: ask for what is computed from it

    def runtime_methods(self) -> list[Any]:
        run = self.result_of("runtime")
        return list(self.methods) if run is not None and run.ok else []

    def run(self, until: str | None = None, should_stop: Callable[[], bool] | None = None) -> "Pipeline":
        raise TypeError("a RemotePipeline's stages run in its worker: use ProcessRun.start()")

    def fork(self, config: PipelineConfig, explicit: Collection[str] | None = None) -> "Pipeline":
        raise TypeError("a RemotePipeline cannot be forked: start a ProcessRun for the other config")


def on_worker(pipe: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(pipe, *args, **kwargs)``, computed by ``pipe``'s worker when ``pipe`` is a :class:`RemotePipeline`, here
    otherwise: what a page calls for anything that reads artifacts. A callable ``progress`` keyword is ``fn``'s
    progress callback either way: from a worker it is called in this thread as the worker reports.

    Example::

        report = on_worker(pipe, compare, sensitivity_layers=0, progress=lambda f, t: bar.progress(f, text=t))
    """
    if isinstance(pipe, RemotePipeline):
        progress = kwargs.pop("progress", None)
        return pipe.ask(PipelineCall(fn, args, kwargs, progress=callable(progress)), on_progress=progress)
    return fn(pipe, *args, **kwargs)


def light_result(r: StageResult) -> StageResult:
    """A copy of ``r`` without its artifact, the graph snapshotted, every part that does not pickle dropped."""
    try:
        graph = r.graph
    except Exception:  # noqa: BLE001 - a graph that does not snapshot: the page says there is none
        graph = None
    parts: dict[str, Any] = {"error": r.error, "calls": list(r.calls), "notes": list(r.notes),
                             "metrics": dict(r.metrics), "diagnostics": r.diagnostics, "table": r.table,
                             "_graph": graph}
    empty = StageResult(r.name, r.ok, 0.0)  # the defaults of the parts that do not travel
    for k, v in list(parts.items()):
        try:
            pickle.dumps(v)
        except Exception:  # noqa: BLE001 - a part holding live objects stays in the worker
            parts[k] = getattr(empty, k)
    return StageResult(name=r.name, ok=r.ok, seconds=r.seconds, timed_by=r.timed_by, **parts)


def died_result(stage: str, died: WorkerDied, seconds: float) -> StageResult:
    """A failed result for ``stage`` whose worker process died: the stage, the signal and its last lines."""
    last = f"; it last printed: {died.last_lines[-1]}" if died.last_lines else ""
    error = StageError(stage, f"the worker process running the {stage} stage {died.cause}{last}",
                       "the app and your other sessions are unaffected; the lines below are the process's last words. "
                       "Run the stage again (a new worker makes the earlier stages again first)",
                       details="\n".join(died.last_lines), causes=[f"WorkerDied: {died.signal_name}"],
                       log=list(died.last_lines))
    return StageResult(stage, False, seconds, error=error)


# -- the worker process ----------------------------------------------------------------------------------------------
def _serve(conn: Any, log_path: str, loader: Callable[[], Any], config: PipelineConfig,
           explicit: frozenset[str]) -> None:
    """In the worker: fd 1 and 2 to the log file, load the model, then answer commands until the caller closes:
    ``run`` (stages, in order), ``switch`` (to another config: a fork of the kept pipeline sharing the most stages,
    ``quantviz.reuse.PipelineCache``), ``stop`` (start no other stage), ``ask`` (a :class:`PipelineCall`)."""
    import sys

    allow_children()  # a stage may run its own worker process (the runtime's call_in_worker)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    send_lock = threading.Lock()

    def send(*msg: Any) -> None:
        data = pickle.dumps(msg)
        with send_lock:
            conn.send_bytes(data)

    try:
        from quantviz.reuse import PipelineCache

        spec = loader()
        pipe = Pipeline(spec, config, explicit=explicit)
        send("loaded", _spec_info(pipe))
    except BaseException as exc:  # noqa: BLE001 - travels back as text, and as itself when it is ours and pickles
        send("load_error", type(exc).__name__, str(exc), "".join(traceback.format_exception(exc)), _as_itself(exc))
        return
    stop = threading.Event()
    runs: list[tuple] = []  # ("run", stages) and ("switch", config, explicit), in the order they came
    wake = threading.Condition()
    kept = PipelineCache(keep=KEEP_PIPELINES)

    def on_event(e: StageEvent) -> None:
        if e.kind == "start":
            send("start", e.stage)
        elif e.kind == "progress":
            send("progress", e.stage, e.fraction, e.text)
        elif e.kind == "end":
            send("end", e.stage)  # its result follows once the pipeline stored it (with what is derived from it)

    pipe.on_event = on_event

    def answer(rid: int, request: PipelineCall) -> None:
        from quantviz.torch_lock import TORCH_LOCK

        last = [0.0]

        def progress(fraction: float, text: str) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY or fraction >= 1.0:
                last[0] = now
                send("call_progress", rid, float(fraction), str(text))

        try:
            with TORCH_LOCK:  # the pages' requests take turns with the stages, in this worker only
                value = ("ok", request.answer(pipe, progress))
            data = pickle.dumps(value)
        except BaseException as exc:  # noqa: BLE001
            data = pickle.dumps(("error", (type(exc).__name__, str(exc), "".join(traceback.format_exception(exc)))))
        with send_lock:
            conn.send_bytes(pickle.dumps(("answer", rid, data)))

    def read() -> None:
        while True:
            try:
                msg = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                os._exit(0)  # the caller closed or died: nothing left to do
            if msg[0] in ("run", "switch"):
                with wake:
                    stop.clear()
                    runs.append(msg)
                    wake.notify()
            elif msg[0] == "stop":
                stop.set()
            elif msg[0] == "ask":
                threading.Thread(target=answer, args=(msg[1], msg[2]), daemon=True).start()

    threading.Thread(target=read, daemon=True, name="quantviz-worker-read").start()
    while True:
        with wake:
            while not runs:
                wake.wait()
            command = runs.pop(0)
        if command[0] == "switch":
            kept.keep_pipeline("model", pipe)
            pipe = kept.start(spec, "model", command[1], command[2])[0]
            pipe.on_event = on_event
            send("switched", _spec_info(pipe), [(s, light_result(pipe.results[s]), _derived(pipe, s))
                                                for s in pipe.stage_names if s in pipe.results])
            continue
        try:
            for stage in command[1]:
                pipe.run(until=stage, should_stop=stop.is_set)
                if stage not in pipe.results:
                    break  # stopped
                send("result", stage, light_result(pipe.results[stage]), _derived(pipe, stage))
                if not pipe.results[stage].ok:
                    break
        except BaseException as exc:  # noqa: BLE001 - a bug: the caller shows it
            send("bug", f"{type(exc).__name__}: {exc}")
        send("idle")


def _as_itself(exc: BaseException) -> LoadError | StageError | None:
    """``exc`` when it is a :class:`LoadError` or :class:`StageError` that survives pickling (the caller then raises it
    with its stage, cause and fix, as an in-process load would), else None."""
    if not isinstance(exc, (LoadError, StageError)):
        return None
    try:
        copy = pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - the text alone travels
        return None
    return exc if type(copy) is type(exc) and str(copy) == str(exc) else None


def _spec_info(pipe: Pipeline) -> SpecInfo:
    """What the caller shows of the worker's model under ``pipe``'s config (the data its figures are measured on)."""
    from quantviz.data import evaluation_data

    spec = pipe.spec
    measured = evaluation_data(spec, pipe.config, pipe.flow.calibrates(pipe.config)).describe()
    return SpecInfo(spec.name, spec.description or "", measured)


def _derived(pipe: Pipeline, stage: str) -> dict[str, Any]:
    """What the pages compute from artifacts on every drawing, computed once in the worker as ``stage`` ends: the
    pattern ledger (the fuse page's notes) once its last stage ran, the runtime stage's methods."""
    from quantviz.why.ledger import build_ledger, ledger_stages

    out: dict[str, Any] = {}
    if stage == pipe.role("runtime") and pipe.runtime_methods():
        out["methods"] = pipe.runtime_methods()
    needed = ledger_stages(pipe)
    if stage == needed[-1] and all(s in pipe.results and pipe.results[s].ok for s in needed):
        try:
            out["ledger"] = build_ledger(pipe)
            pickle.dumps(out["ledger"])
        except Exception:  # noqa: BLE001 - no ledger: the page builds none either (it says why)
            out.pop("ledger", None)
    return out


# -- the caller's side -----------------------------------------------------------------------------------------------
class ProcessRun(RunReader):
    """One pipeline living in its own worker process; the caller reads its state and light results.

    Example::

        run = ProcessRun(partial(load_model, "sample:digits_cnn"), PipelineConfig()).start()
        run.wait_for("trace", timeout=60)
        run.stop(); run.join()          # a running stage is killed at once; what finished stays
        run.start()                     # Continue: a new worker makes the earlier stages again, then runs the rest
    """

    kind: Literal["process"] = "process"
    stop_means = ("end the run now: the running stage is killed with this run's worker process; what finished "
                  "stays, and Continue makes its artifacts again in a new worker first")  # the app's Stop help

    def __init__(self, loader: Callable[[], Any], config: PipelineConfig, explicit: Collection[str] = frozenset(),
                 name: str = "model") -> None:
        self.loader = loader  # picklable: a partial of load_model, or a module-level function
        self.explicit = frozenset(explicit)
        self.config = config  # as given: the worker's pipeline applies the backend's defaults as this side's does
        self.pipe = RemotePipeline(SpecInfo(name), config, self.explicit, ask=self._request)
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Any = None
        self._log_path = ""
        self._has: set[str] = set()  # stages whose artifacts the current worker holds
        self._busy = False  # the worker runs stages
        self._loaded = threading.Event()
        self._ever_loaded = False  # a worker loaded the model once: its SpecInfo is kept
        self._load_error: LoadError | StageError | None = None
        self._current: str | None = None
        self._fraction, self._text = 0.0, ""
        self._t0 = self._stage_t0 = 0.0
        self._finished_at: dict[str, float] = {}
        self._stop = False
        self._killed = False  # this side killed the worker (Stop): its death is no failure
        self._answers: dict[int, Any] = {}
        self._call_progress: dict[int, tuple[float, str]] = {}  # a request's latest progress, by request id
        self._answered = threading.Condition(self._lock)
        self._channel: _Channel | None = None  # the worker this run holds (handed over by take_worker)
        self._switched = threading.Event()
        self._ids = itertools.count()
        self.stopped_by_user = False
        self.error: BaseException | None = None  # a bug in the worker, or the model that did not load
        self.died: WorkerDied | None = None  # how the last worker died, when it did on its own

    # -- control -----------------------------------------------------------------------------------------------
    def start(self) -> "ProcessRun":
        """Start the worker (again) on the stages without a result; a no-op while it runs or nothing is left."""
        with self._lock:
            if self._busy or self.error is not None or not self.todo():
                return self
            self._stop, self.stopped_by_user, self._killed = False, False, False
            names = self.pipe.stage_names
            todo = self.todo()
            self._busy = True
            self._t0 = time.perf_counter()
        try:
            self._ensure_worker()
            self._send("run", list(names[: names.index(todo[-1]) + 1]))
        except BaseException:
            with self._lock:
                self._busy = False
            raise
        return self

    def loaded(self, timeout: float = LOAD_TIMEOUT) -> SpecInfo:
        """Start the worker when none runs and wait for it to load the model: its :class:`SpecInfo`, or
        :class:`LoadError` saying why it does not load (a missing file, an exception, an abort)."""
        if self._ever_loaded:
            return self.pipe.spec  # type: ignore[return-value]
        self._ensure_worker()
        if not self._loaded.wait(timeout):
            raise LoadError(f"the model did not load within {timeout:.0f} s")
        if self._load_error is not None:
            raise self._load_error
        return self.pipe.spec  # type: ignore[return-value]

    def retry(self) -> "ProcessRun":
        """Run the failed stage again (its result dropped; the stages before it stay), in a new worker when the
        last one died; a no-op while the worker runs."""
        with self._lock:
            if self._busy:
                return self
            failed = self.pipe.failed
            if failed is not None:
                self.pipe.results.pop(failed.name, None)
            self.error = None if self._load_error is None else self.error
            self.died = None
        return self.start()

    def stop(self, by_user: bool = True) -> None:
        """End the run now: a stage running in the worker is killed with its process (the next start makes the
        earlier stages again in a new one); between stages, the worker stops before the next. What finished stays."""
        with self._lock:
            self.stopped_by_user = self.stopped_by_user or by_user
            if not self._busy:
                return
            self._stop = True
            kill = self._current is not None
            if kill:
                self._killed = True
        if kill:
            self._kill()
            return
        try:
            self._send("stop")  # between stages: the worker starts no other
        except OSError:
            return
        timer = threading.Timer(STOP_GRACE, self._kill_if_running)  # a stage that started meanwhile is killed
        timer.daemon = True
        timer.start()

    def _kill_if_running(self) -> None:
        with self._lock:
            kill = self._busy and self._stop and self._current is not None
            if kill:
                self._killed = True
        if kill:
            self._kill()

    def close(self) -> None:
        """End the worker process (its pipeline with it); the light results stay readable."""
        with self._lock:
            self._killed = True
            self._stop = self._stop or self._busy
        self._kill()

    def take_worker(self, other: "ProcessRun", timeout: float = SWITCH_TIMEOUT) -> bool:
        """Take ``other``'s idle worker (same model, another config) when this run holds none: the worker keeps
        ``other``'s pipeline and forks it for this config, so the stages both configs share are done at once
        (``Pipeline.fork``, as the app's threads did) and switching back is a fork too. False, and nothing changes,
        when ``other`` runs stages or holds no worker.

        Example::

            new = ProcessRun(partial(load_model, "sample:digits_cnn"), PipelineConfig(fusion="quantviz"))
            new.take_worker(old)        # True: trace ... convert done, the rest runs on start()
            new.start()
        """
        if other is self or self.worker_pid is not None:
            return False
        with other._lock:
            channel = other._channel
            if other._busy or channel is None or not channel.proc.is_alive():
                return False
            other._proc = other._conn = other._channel = None
            other._has = set()
        with self._lock:
            self._proc, self._conn, self._channel, self._log_path = channel.proc, channel.conn, channel, \
                channel.log_path
            self._has = set()
            self._switched.clear()
            channel.owner = self  # the reader delivers the worker's messages here from now on
        self._send("switch", self.config, self.explicit)
        if not self._switched.wait(timeout):
            self.close()
            raise TimeoutError(f"the worker did not switch to this config within {timeout:.0f} s")
        return True

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the run to end; True when it has."""
        end = None if timeout is None else time.monotonic() + timeout
        while self.alive:
            if end is not None and time.monotonic() >= end:
                return False
            time.sleep(0.02)
        return True

    # -- reading -----------------------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        """The worker is running stages."""
        return self._busy

    @property
    def worker_pid(self) -> int | None:
        """The worker process's id while it lives."""
        proc = self._proc
        return proc.pid if proc is not None and proc.is_alive() else None

    def view(self) -> RemotePipeline:
        """A shallow copy with its own ``results`` dict, to read while the worker adds results."""
        import copy

        snap = copy.copy(self.pipe)
        snap.results = dict(self.pipe.results)
        return snap

    def state(self) -> RunState:
        """Every stage's state, the current stage's progress and the run's timings, read at one moment."""
        with self._lock:
            results = dict(self.pipe.results)
            alive = self._busy
            current = self._current if alive else None
            fraction, text = self._fraction, self._text
            finished = dict(self._finished_at)
            elapsed = time.perf_counter() - self._t0 if self._t0 else 0.0
            stage_elapsed = time.perf_counter() - self._stage_t0 if current and self._stage_t0 else 0.0
            stopping = self._stop
        if current is not None and current in results:  # a new worker makes a finished stage's artifacts again
            text = text or f"making {current}'s artifacts again (a new worker process)"
        return self._run_state(results, alive, current, fraction, text, stopping, elapsed, finished, stage_elapsed)

    # -- the worker --------------------------------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        with self._lock:
            if self._proc is not None and self._proc.is_alive():
                return
            ctx = _context()
            with tempfile.NamedTemporaryFile(prefix="quantviz-run-", suffix=".log", delete=False) as tmp:
                self._log_path = tmp.name
            mine, theirs = ctx.Pipe(duplex=True)
            proc = _Process(target=_serve, args=(theirs, self._log_path, self.loader, self.config,
                                                 self.explicit), daemon=True, name="quantviz-session-worker")
            proc.start()
            theirs.close()
            self._proc, self._conn, self._has = proc, mine, set()
            self._channel = _Channel(proc, mine, self._log_path, self)
            self._loaded.clear()
            reader = threading.Thread(target=_read, args=(self._channel,), daemon=True, name="quantviz-run-read")
            reader.start()

    def _send(self, *msg: Any) -> None:
        conn = self._conn
        if conn is None:
            raise OSError("no worker")
        conn.send_bytes(pickle.dumps(msg))

    def _kill(self) -> None:
        """Kill the worker and wait for its reader to take note (so a Continue right after starts a new one)."""
        proc = self._proc
        if proc is None:
            return
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        end = time.monotonic() + 5
        while self._proc is proc and time.monotonic() < end:
            time.sleep(0.01)

    def _request(self, request: PipelineCall, timeout: float | None,
                 on_progress: Callable[[float, str], None] | None = None) -> Any:
        """Send ``request`` to the worker and wait for its answer (the worker keeps the live pipeline), passing the
        request's progress to ``on_progress`` in this thread; when no worker holds the finished stages' artifacts
        (Stop killed it, it died, it was closed), a new one makes them again first."""
        self._remake(LOAD_TIMEOUT if timeout is None else timeout)
        proc = self._proc
        if proc is None or not proc.is_alive():
            raise WorkerDied("a request", None, ["no worker process holds this pipeline"])
        rid = next(self._ids)
        self._send("ask", rid, request)
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._answered:
                if rid in self._answers:
                    self._call_progress.pop(rid, None)
                    status, value = pickle.loads(self._answers.pop(rid))
                    break
                if self._proc is not proc or not proc.is_alive():
                    raise WorkerDied("a request", proc.exitcode, _read_lines(self._log_path)[-LAST_LINES:])
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"the worker did not answer within {timeout} s")
                self._answered.wait(0.1 if left is None else min(0.1, left))
                progress = self._call_progress.pop(rid, None)
            if progress is not None and on_progress is not None:
                on_progress(*progress)  # outside the lock: the reader goes on meanwhile
        if status == "ok":
            return value
        raise WorkerError(*value)

    def _remake(self, timeout: float) -> None:
        """Make sure a worker holds the artifacts of every stage with an ok result: wait while a running worker makes
        them; else start one that runs those stages (their results here are kept as shown)."""
        end = time.monotonic() + timeout
        while True:
            with self._lock:
                names = self.pipe.stage_names
                done = [s for s in names if s in self.pipe.results and self.pipe.results[s].ok]
                missing = [s for s in done if s not in self._has]
                busy, held = self._busy, self._proc is not None and self._proc.is_alive()
            if held and not missing:
                return
            if not busy:
                break
            if time.monotonic() > end:
                raise TimeoutError("the worker did not make the stages' artifacts again in time")
            time.sleep(0.05)
        self._ensure_worker()
        if not done:
            return
        with self._lock:
            self._busy, self._stop, self._killed = True, False, False
            self._t0 = time.perf_counter()
        self._send("run", done)
        if not self.join(max(0.0, end - time.monotonic())):
            raise TimeoutError("the worker did not make the stages' artifacts again in time")

    def _ended(self, proc: Any, lines: list[str]) -> None:
        """The worker ``proc`` ended: on its own while running a stage, a failed result for that stage with the
        signal and its last lines; killed by Stop, nothing failed."""
        with self._lock:
            if self._proc is not proc:
                return  # a newer worker took over
            died = WorkerDied(f"the {self._current or 'pipeline'} stage", proc.exitcode, lines[-LAST_LINES:])
            if not self._loaded.is_set():
                self._load_error = LoadError(f"loading the model {died.cause} its worker process" +
                                             (f"; it last printed: {died.last_lines[-1]}" if died.last_lines else ""))
                self.error = self._load_error
                self._loaded.set()
            elif self._busy and not self._killed:
                self.died = died
                stage = self._current
                if stage is not None and (stage not in self.pipe.results or self.pipe.results[stage].ok is False):
                    self.pipe.results[stage] = died_result(stage, died, time.perf_counter() - self._stage_t0)
                elif stage is None:
                    self.error = died
            self._busy, self._current, self._has = False, None, set()
            self._proc, self._conn, self._channel = None, None, None
            self._answered.notify_all()

    def _on_message(self, msg: tuple) -> None:
        kind = msg[0]
        with self._lock:
            if kind == "loaded":
                if not self._ever_loaded:  # a later worker's load keeps the first record (views hold it)
                    self.pipe.spec, self._ever_loaded = msg[1], True
                self._loaded.set()
            elif kind == "load_error":
                _, etype, message, _details, itself = msg
                self._load_error = itself or LoadError(message if etype in ("LoadError", "StageError") else
                                                       f"loading the model raised {etype}: {message}")
                self.error = self._load_error
                self._busy = False
                self._loaded.set()
            elif kind == "start":
                self._current, self._fraction, self._text = msg[1], 0.0, ""
                self._stage_t0 = time.perf_counter()
            elif kind == "progress":
                self._fraction, self._text = msg[2], msg[3]
            elif kind == "end":
                self._current, self._fraction, self._text = None, 0.0, ""
            elif kind == "result":
                self._take_result(msg[1], msg[2], msg[3], time.perf_counter() - self._t0)
            elif kind == "idle":
                self._busy, self._current = False, None
            elif kind == "bug":
                self.error = RuntimeError(msg[1])
            elif kind == "answer":
                self._answers[msg[1]] = msg[2]
                self._answered.notify_all()
            elif kind == "call_progress":
                self._call_progress[msg[1]] = (msg[2], msg[3])
            elif kind == "switched":
                if not self._ever_loaded:
                    self.pipe.spec, self._ever_loaded = msg[1], True
                for stage, result, derived in msg[2]:  # the stages the worker's fork shares: done already
                    self._take_result(stage, result, derived, 0.0)
                self._loaded.set()
                self._switched.set()

    def _take_result(self, stage: str, result: StageResult, derived: dict[str, Any], finished_at: float) -> None:
        """A stage's light result (and what the worker derived from its artifact) as the worker now holds it; a
        stage made again keeps the copy the page shows. Under ``_lock``."""
        self._has.add(stage)
        if stage in self.pipe.results:
            return
        if "ledger" in derived:
            self.pipe.precomputed_ledger = derived["ledger"]
        if "methods" in derived:
            self.pipe.methods = derived["methods"]
        self.pipe.results[stage] = result
        self._finished_at[stage] = finished_at


@dataclass
class _Channel:
    """One worker process and the caller's end of its pipe; ``owner`` the run its messages go to (it changes when
    another config's run takes the worker: ``ProcessRun.take_worker``)."""

    proc: Any
    conn: Any
    log_path: str
    owner: ProcessRun


def _read(channel: _Channel) -> None:
    """The caller's reader of one worker: each message to the channel's current owner; at the worker's end, the
    owner is told (``ProcessRun._ended``) and the log file removed."""
    while True:
        try:
            msg = pickle.loads(channel.conn.recv_bytes())
        except (EOFError, OSError):
            break
        channel.owner._on_message(msg)
    channel.proc.join()
    lines = _read_lines(channel.log_path)
    try:
        os.unlink(channel.log_path)
    except OSError:
        pass
    channel.owner._ended(channel.proc, lines)
    channel.conn.close()


# -- requests the pages send (module-level functions: they travel by name) ------------------------------------------
def what_if_outcome(pipe: Pipeline, changes: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    """``quantviz.why.ledger.what_if`` as the ledger's page shows it: the error of the other config (None when it
    ran) and the patterns whose fate changed, as dicts (the other pipeline stays in the worker).

        on_worker(pipe, what_if_outcome, {"duplicate_dequant": "on"})   # (None, [{"pattern": ..., ...}])
    """
    from quantviz.why.ledger import what_if

    other, changed = what_if(pipe, **changes)
    return (other.failed.error.message if other.failed else None), [vars(c) for c in changed]


def reproduce_for(pipe: Pipeline, model_ref: str) -> str:
    """``quantviz.script.reproduce_script(model_ref, pipe)`` with the pipeline first (``on_worker``'s order)."""
    from quantviz.script import reproduce_script

    return reproduce_script(model_ref, pipe)


def build_own_model(config: PipelineConfig) -> Any:
    """The model of a flow that builds its own from its config (export_llm): a worker's loader that pickles."""
    from quantviz.flows import FLOWS

    return FLOWS[config.flow].own_model.build(config)
