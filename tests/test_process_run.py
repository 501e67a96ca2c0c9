"""quantviz.process_run: a pipeline in its own worker process, read from the caller (no Streamlit).

Real flows in real worker processes: the default flow on sample:digits_cnn gives the same figures as an in-process
Pipeline; a stage that aborts natively kills only its worker and the state names the stage and SIGABRT; two runs
proceed at once; Stop kills a long stage at once and Continue makes the earlier stages again in a new worker; a new
config takes the idle worker and keeps the stages both configs share, and switching back is a fork too; a request
streams its progress to the asking thread; the runtime's methods come back with the run stage.
"""
from __future__ import annotations

import os
import threading
import time
from functools import partial

import pytest

from quantviz import PipelineConfig, load_model
from quantviz.background import DONE, FAILED, NOT_RUN, RUNNING
from quantviz.outputs import summary
from quantviz.process_run import ProcessRun, RemotePipeline, on_worker
from quantviz.why.ledger import build_ledger
from quantviz.workers import WorkerError, warm

ABORTING = "tests/fixtures/process_run_models.py:make_aborting"
SLEEPING = "tests/fixtures/process_run_models.py:make_sleeping"
TIMEOUT = 600


@pytest.fixture(scope="module", autouse=True)
def _warm():
    warm()  # the fork server imports torch once, before the first run is timed


@pytest.fixture
def runs():
    made: list[ProcessRun] = []

    def make(ref: str, **config) -> ProcessRun:
        run = ProcessRun(partial(load_model, ref), PipelineConfig(**config), frozenset(config), name=ref)
        made.append(run)
        return run

    yield make
    for run in made:
        run.close()


def test_digits_cnn_reaches_run_with_the_figures_of_an_in_process_pipeline(runs, flow):
    run = runs("sample:digits_cnn").start()
    assert run.join(TIMEOUT)
    here = flow("sample:digits_cnn")
    pipe = run.pipe
    assert isinstance(pipe, RemotePipeline) and pipe.ok and run.error is None
    assert list(pipe.results) == list(here.results)
    assert run.state().states == {s: DONE for s in here.stage_names}
    assert pipe.spec.name == "digits_cnn" and "evaluation data" in pipe.spec.measured_on
    n, m = pipe.numerics(), here.numerics()
    assert n.runtime_accuracy == m.runtime_accuracy and n.float_accuracy == m.float_accuracy
    assert n.float_vs_runtime_sqnr_db == pytest.approx(m.float_vs_runtime_sqnr_db, abs=1e-6)
    for stage in ("trace", "convert", "delegate", "fuse"):  # the graphs were copied, not re-made here
        assert pipe.results[stage].graph.kind_counts() == here.results[stage].graph.kind_counts()
        assert pipe.results[stage].artifact is None and pipe.results[stage].notes == here.results[stage].notes
    assert pipe.pte_bytes() == here.pte_bytes()  # asked of the worker, which holds the program
    assert build_ledger(pipe).counts() == build_ledger(here).counts()  # the ledger the worker built as fuse ended
    assert pipe.precomputed_ledger is not None
    assert on_worker(pipe, summary)["numerics"] == summary(here)["numerics"]
    assert run.worker_pid not in (None, os.getpid())


def test_a_native_abort_kills_only_the_worker_and_the_state_names_the_stage_and_signal(runs):
    run = runs(ABORTING).start()
    assert run.join(TIMEOUT)
    s = run.state()
    assert s.states["trace"] == DONE and s.states["prepare"] == DONE and s.states["calibrate"] == FAILED
    assert s.states["convert"] == NOT_RUN and not s.running
    err = run.pipe.results["calibrate"].error
    assert err.stage == "calibrate" and err.causes == ["WorkerDied: SIGABRT"]
    assert "calibrate stage aborted (SIGABRT)" in err.message
    assert err.log[-1] == "native check failed: calibration batch refused"
    assert run.died is not None and run.died.signal_name == "SIGABRT" and run.worker_pid is None
    assert run.worker_pid is None
    # a request now: a new worker makes trace and prepare again first (nothing the user made is lost)
    assert on_worker(run.pipe, _artifact_kind, "prepare") == "GraphModule"
    assert run.worker_pid is not None and run.state().states["calibrate"] == FAILED
    # Run the stage again: a new worker makes trace and prepare again, then dies at calibrate again
    run.retry()
    assert run.join(TIMEOUT)
    assert run.state().states["calibrate"] == FAILED and run.pipe.results["trace"].ok


def test_two_runs_proceed_at_once(runs):
    slow = runs(SLEEPING).start()
    assert slow.wait_for("prepare", TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while slow.state().current != "calibrate" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slow.state().states["calibrate"] == RUNNING  # asleep inside calibrate (60 s) from here on
    t0 = time.monotonic()
    quick = runs("sample:digits_cnn", until="convert").start()
    assert quick.join(TIMEOUT)
    took = time.monotonic() - t0
    assert quick.pipe.ok and list(quick.pipe.results) == ["trace", "prepare", "calibrate", "convert"]
    assert slow.state().states["calibrate"] == RUNNING and took < 50, took  # it never waited for the sleeper


def test_stop_kills_a_long_stage_at_once_and_continue_resumes_in_a_new_worker(runs):
    run = runs(SLEEPING, until="convert").start()
    deadline = time.monotonic() + TIMEOUT
    while run.state().current != "calibrate" and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = run.worker_pid
    t0 = time.monotonic()
    run.stop()
    assert run.join(10)
    took = time.monotonic() - t0
    assert took < 2.0, took
    s = run.state()
    assert s.stopped and s.states["trace"] == DONE and s.states["prepare"] == DONE
    assert s.states["calibrate"] == NOT_RUN and "calibrate" not in run.pipe.results
    assert run.worker_pid is None and not _alive(pid)
    trace_graph = run.pipe.results["trace"].graph
    run.start()  # Continue: a new worker; the stages done stay as they were shown
    deadline = time.monotonic() + TIMEOUT
    while run.state().current != "calibrate" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.worker_pid not in (None, pid) and run.state().states["trace"] == DONE
    assert run.pipe.results["trace"].graph is trace_graph
    run.stop()
    assert run.join(10)


def test_a_request_that_raises_comes_back_as_worker_error(runs):
    run = runs("sample:digits_cnn", until="trace").start()
    assert run.join(TIMEOUT)
    with pytest.raises(WorkerError) as err:
        on_worker(run.pipe, _artifact_of, "convert")
    assert err.value.kind == "KeyError"
    assert on_worker(run.pipe, _artifact_kind, "trace") == "DigitsCNN"  # the live artifact, there: fx's trace keeps
    # the model (prepare_fx traces it)


def test_a_new_config_takes_the_idle_worker_keeps_the_shared_stages_and_switches_back(runs, flow):
    old = runs("sample:digits_cnn").start()
    assert old.join(TIMEOUT) and old.pipe.ok
    pid, pte = old.worker_pid, old.pipe.pte_bytes()
    new = runs("sample:digits_cnn", fusion="quantviz")  # fuse and what follows it change
    assert new.take_worker(old)
    assert new.worker_pid == pid and old.worker_pid is None and not new.alive
    shared = ["trace", "prepare", "calibrate", "convert", "capture", "edge", "delegate"]
    assert [s for s in new.pipe.stage_names if s in new.pipe.results] == shared  # done at once, before start
    for s in shared:  # the old run's own results (forked in the worker, not run again): same seconds
        assert new.pipe.results[s].seconds == old.pipe.results[s].seconds
    assert new.todo() == ["fuse", "emit", "run"]
    new.start()
    assert new.join(TIMEOUT) and new.pipe.ok
    here = flow("sample:digits_cnn", fusion="quantviz")
    assert new.pipe.pte_bytes() == here.pte_bytes() != pte
    assert new.pipe.results["fuse"].graph.kind_counts() == here.results["fuse"].graph.kind_counts()
    # back to the first config: the worker's kept pipeline, forked whole; nothing runs
    assert old.take_worker(new) and old.worker_pid == pid and old.todo() == []
    assert old.pipe.pte_bytes() == pte


def test_a_request_streams_its_progress_to_the_asking_thread(runs):
    from quantviz.numerics.compare import compare

    run = runs("sample:digits_cnn").start()
    assert run.join(TIMEOUT)
    seen: list[tuple[float, str, int]] = []
    report = on_worker(run.pipe, compare, progress=lambda f, t: seen.append((f, t, threading.get_ident())))
    assert report.end_to_end and len(seen) >= 3, seen
    assert {ident for *_, ident in seen} == {threading.get_ident()}  # drawn by the page's own thread
    fractions = [f for f, *_ in seen]
    assert fractions == sorted(fractions) and 0.0 < fractions[0] < fractions[-1] <= 1.0


def test_the_runtime_methods_come_back_with_the_run_stage(runs):
    run = runs("sample:prefill_decode", flow="torchao").start()
    assert run.join(TIMEOUT) and run.pipe.ok
    methods = run.pipe.runtime_methods()  # the methods table of the run page: copied as the run stage ended
    assert [m.name for m in methods] == ["forward", "decode"]
    assert all(m.float_vs_runtime_sqnr_db > 15 for m in methods)


def test_a_model_that_does_not_load_raises_load_error():
    from quantviz.errors import LoadError

    run = ProcessRun(partial(load_model, "tests/fixtures/missing.py:make"), PipelineConfig())
    try:
        with pytest.raises(LoadError) as err:
            run.loaded(120)
        assert "missing.py" in str(err.value)
        assert run.start().alive is False
    finally:
        run.close()


def _artifact_of(pipe, stage: str):
    return pipe.results[stage].artifact


def _artifact_kind(pipe, stage: str) -> str:
    return type(pipe.results[stage].artifact).__name__


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False
