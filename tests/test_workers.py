"""Warm worker processes (quantviz.workers): a call's value comes back, an exception comes back as text, and a
process that aborts or is killed is reported with its signal and last lines while the caller lives on. The
ExecuTorch runtime aborting inside the run stage's worker is tested in test_quantviz_fusion (fx embedding)."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from quantviz.workers import WorkerCancelled, WorkerDied, WorkerError, call_in_worker, warm


def _print_and_abort(text: str) -> None:
    os.write(2, f"{text}\n".encode())  # what a native ET_CHECK prints before abort()
    os.abort()


def _raise(text: str) -> None:
    raise ValueError(text)


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_a_value_comes_back_and_the_worker_is_another_process():
    assert call_in_worker(os.getpid) != os.getpid()
    assert call_in_worker(sum, [1, 2, 3]) == 6


def test_an_exception_comes_back_as_its_type_and_message():
    with pytest.raises(WorkerError) as err:
        call_in_worker(_raise, "bad input")
    assert err.value.kind == "ValueError" and err.value.message == "bad input" and "_raise" in err.value.details


def test_an_abort_kills_only_the_worker_and_names_the_signal_and_its_last_words():
    log: list[str] = []
    with pytest.raises(WorkerDied) as died:
        call_in_worker(_print_and_abort, "kernel check failed: zero point", what="the test", log=log)
    d = died.value
    assert d.exitcode == -signal.SIGABRT and d.signal_name == "SIGABRT" and d.cause == "aborted (SIGABRT)"
    assert d.last_lines[-1] == "kernel check failed: zero point" and log == d.last_lines
    assert str(d).startswith("the worker process running the test aborted (SIGABRT)")
    assert call_in_worker(sum, [2, 2]) == 4  # this process, and the next worker, carry on


def test_stop_kills_the_worker_at_once():
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    t0 = time.monotonic()
    with pytest.raises(WorkerCancelled):
        call_in_worker(_sleep, 30.0, should_stop=stop.is_set)
    assert time.monotonic() - t0 < 5


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does


def test_a_killed_worker_is_reported_as_killed():
    with pytest.raises(WorkerDied) as died:
        call_in_worker(_kill_self)
    assert died.value.signal_name == "SIGKILL" and "out of memory" in died.value.cause


def _slow_execute(config, program, lowered, batches, log=None, should_stop=None):
    return call_in_worker(_sleep, 120.0, what="the ExecuTorch runtime", should_stop=should_stop)


def test_stop_kills_the_runtime_stages_worker_and_continue_runs_the_stage_again(monkeypatch):
    """Stop during the run stage kills its worker process at once (not after the stage): the stage has no result,
    nothing failed, and Continue would run it again."""
    from quantviz import Pipeline, PipelineConfig, load_model
    from quantviz.background import BackgroundRun
    from quantviz.stages import run as run_stage

    warm()  # the fork server is up (a first call waits for its torch import)
    pipe = Pipeline(load_model("sample:digits_cnn"), PipelineConfig(flow="pt2e", until="emit")).run()
    assert pipe.ok
    monkeypatch.setattr(run_stage, "execute", _slow_execute)  # a runtime run that would take two minutes
    pipe.config = pipe.config.with_changes(until="run")
    bg = BackgroundRun(pipe).start()
    deadline = time.monotonic() + 60
    while bg.state().current != "run" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bg.state().current == "run"
    time.sleep(0.5)  # the worker has started
    t0 = time.monotonic()
    bg.stop()
    assert bg.join(30) and time.monotonic() - t0 < 10
    r = pipe.results.get("run")
    assert r is None, (r.ok, r.error and str(r.error)[:500], time.monotonic() - t0)
    assert pipe.failed is None and bg.todo() == ["run"]
    assert bg.state().states["run"] == "not run" and bg.state().stopped
