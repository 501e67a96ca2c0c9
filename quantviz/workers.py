"""Run one call in its own process, forked from a warm server that imported torch and ExecuTorch's runtime once.

Native code that aborts (an ExecuTorch kernel's ``ET_CHECK``, XNNPACK), runs out of memory or is killed ends only
that process: the caller gets :class:`WorkerDied` naming the signal and the last lines the process printed, and
goes on. What the call printed on fd 2 (the runtime's and XNNPACK's own log) comes back either way::

    from quantviz.workers import call_in_worker, WorkerDied

    warm()                                      # at start-up: the fork server imports torch now, not on first use
    out = call_in_worker(sum, [1, 2, 3])        # 6, computed in a forked process
    try:
        call_in_worker(os.abort)
    except WorkerDied as died:
        died.signal_name, died.last_lines       # "SIGABRT", what it printed before it died

Used by the run stage (the ExecuTorch runtime) and the app's model loading (a user's file and factory), so neither
a runtime abort nor a long stage elsewhere can take the app down or keep a session waiting.
"""
from __future__ import annotations

import io
import multiprocessing
import multiprocessing.context
import os
import pickle
import signal
import tempfile
import threading
import traceback
from dataclasses import dataclass, field
from multiprocessing import context, forkserver, popen_forkserver, reduction, spawn, util
from typing import Any, Callable

# imported once by the fork server; every worker starts with them (a fork costs milliseconds, these seconds)
PRELOAD = ["torch", "executorch.extension.pybindings.portable_lib", "executorch.kernels.quantized",
           "quantviz.loading", "quantviz.workers"]
LAST_LINES = 20  # of what a dead worker printed, kept for the page

_CONTEXT: Any = None
_CONTEXT_LOCK = threading.Lock()


def _context() -> Any:
    global _CONTEXT
    with _CONTEXT_LOCK:
        if _CONTEXT is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            _CONTEXT = ctx
        return _CONTEXT


class _Popen(popen_forkserver.Popen):
    """multiprocessing's forkserver launch, without the caller's ``__main__``: under Streamlit that is the app's
    script, which the worker would otherwise import (seconds) before every call."""

    def _launch(self, process_obj: Any) -> None:
        prep_data = {k: v for k, v in spawn.get_preparation_data(process_obj._name).items()
                     if k not in ("init_main_from_path", "init_main_from_name")}
        buf = io.BytesIO()
        context.set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            context.set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)
        _parent_w = os.dup(w)  # the child's sentinel of this process, as multiprocessing keeps it
        self.finalizer = util.Finalize(self, util.close_fds, (_parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _Process(multiprocessing.context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> _Popen:
        return _Popen(process_obj)


def warm() -> None:
    """Start the fork server now (it imports ``PRELOAD``), so the first call pays a fork, not torch's import."""
    call_in_worker(os.getpid)


@dataclass
class WorkerDied(RuntimeError):
    """The worker process ended without an answer: killed by a signal (an abort, the OOM killer, Stop) or exited."""

    what: str  # what it was doing, e.g. "the ExecuTorch runtime"
    exitcode: int | None  # negative: the signal number
    last_lines: list[str] = field(default_factory=list)  # the last lines it printed (fd 1 and 2)

    @property
    def signal_name(self) -> str:
        """``SIGABRT``, ``SIGKILL`` ... ; ``exit code 3`` when it exited without a signal."""
        if self.exitcode is not None and self.exitcode < 0:
            try:
                return signal.Signals(-self.exitcode).name
            except ValueError:
                return f"signal {-self.exitcode}"
        return f"exit code {self.exitcode}"

    @property
    def cause(self) -> str:
        """In words: ``aborted (SIGABRT)``, ``killed (SIGKILL: out of memory, or stopped)``."""
        name = self.signal_name
        words = {"SIGABRT": "aborted", "SIGSEGV": "crashed (segmentation fault)", "SIGBUS": "crashed (bus error)",
                 "SIGKILL": "killed (out of memory, or stopped)", "SIGFPE": "crashed (arithmetic fault)",
                 "SIGILL": "crashed (illegal instruction)", "SIGTERM": "terminated"}.get(name, "ended")
        return f"{words} ({name})"

    def __str__(self) -> str:
        tail = f"; its last lines: {' | '.join(self.last_lines[-3:])}" if self.last_lines else ""
        return f"the worker process running {self.what} {self.cause}{tail}"


class WorkerCancelled(Exception):
    """``should_stop`` became true: the worker was killed (not a RuntimeError: a stage catching runtime failures lets
    it through to the pipeline, which keeps no result)."""


@dataclass
class WorkerError(Exception):
    """The call raised in the worker: its type name, message and traceback (exceptions travel as text)."""

    kind: str
    message: str
    details: str = ""

    def __str__(self) -> str:
        return self.message


def call_in_worker(fn: Callable, *args: Any, what: str = "the call", log: list[str] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> Any:
    """``fn(*args)`` in a process forked from the warm server; its return value (pickled back).

    Raises :class:`WorkerError` when ``fn`` raised, :class:`WorkerDied` when the process died without answering,
    :class:`WorkerCancelled` when ``should_stop()`` turned true (the process is killed). What the process printed on
    fd 1 and 2 is appended to ``log`` (when given). ``fn`` and ``args`` must pickle (module-level functions)."""
    ctx = _context()
    with tempfile.NamedTemporaryFile(prefix="quantviz-worker-", suffix=".log", delete=False) as tmp:
        log_path = tmp.name
    receive, send = ctx.Pipe(duplex=False)
    # plain pickle, not multiprocessing's (whose tensors travel as shared-memory handles the sender must outlive)
    proc = _Process(target=_child, args=(send, log_path, pickle.dumps((fn, args))), daemon=True)
    try:
        proc.start()
        send.close()
        answer = None
        while answer is None:
            if receive.poll(0.05):
                try:
                    answer = pickle.loads(receive.recv_bytes())
                except EOFError:  # the pipe closed: the process died
                    break
            elif not proc.is_alive() and not receive.poll(0):
                break
            if should_stop is not None and should_stop():
                proc.kill()
                proc.join()
                raise WorkerCancelled(f"stopped: {what} was cancelled")
        proc.join()
        lines = _read_lines(log_path)
        if log is not None:
            log.extend(lines)
        if answer is None:
            raise WorkerDied(what, proc.exitcode, lines[-LAST_LINES:])
        status, value = answer
        if status == "ok":
            return value
        raise WorkerError(*value)
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
        receive.close()
        os.unlink(log_path)


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []


def allow_children() -> None:
    """In a worker forked by the warm server: let it start workers of its own (a stage's runtime ``call_in_worker``),
    forked from that same server. A worker is a daemon process, which multiprocessing forbids children; and
    multiprocessing would start a second server (torch imported again: 10 s on the first run stage) since this
    process did not start the first: the fork inherited the server's address and "alive" pipe, so it uses them."""
    from multiprocessing import forkserver, resource_tracker

    multiprocessing.current_process()._config.pop("daemon", None)
    server = forkserver._forkserver
    if server._forkserver_address is not None and server._forkserver_alive_fd is not None:
        server.ensure_running = resource_tracker.ensure_running  # type: ignore[method-assign]


def _child(send: Any, log_path: str, call: bytes) -> None:
    """In the worker: fd 1 and 2 to the log file (what native code prints survives an abort), run, answer."""
    import sys

    allow_children()
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        fn, args = pickle.loads(call)
        answer = ("ok", fn(*args))
    except BaseException as exc:  # noqa: BLE001 - travels back as text: exception classes may not unpickle
        answer = ("error", (type(exc).__name__, str(exc), "".join(traceback.format_exception(exc))))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        data = pickle.dumps(answer)
    except Exception as exc:  # noqa: BLE001 - the value does not pickle
        data = pickle.dumps(("error", (type(exc).__name__, f"the worker's answer could not be sent back: {exc}", "")))
    send.send_bytes(data)
    send.close()
