"""quantviz.background: a pipeline's stages in a worker thread, read from another (no Streamlit).

Most tests drive a stand-in pipeline whose stages wait for a gate the test opens, so every state the reader can
see (done, running, waiting, stopping, stopped, failed) is reached on purpose, not by timing; the last one runs
the real flow.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from quantviz.background import DONE, FAILED, NOT_RUN, RUNNING, WAITING, BackgroundRun, RunState
from quantviz.flows import FLOWS
STAGES = FLOWS["fx"].names  # the default flow's stages
from quantviz.pipeline import StageEvent

TIMEOUT = 30


@dataclass
class FakeResult:
    name: str
    ok: bool
    visible: dict  # the pipeline's results, to record whether the graph was read before the result was stored
    read_before_stored: list[bool] = field(default_factory=list)

    @property
    def graph(self) -> str:
        self.read_before_stored.append(self.name not in self.visible)
        return f"graph of {self.name}"


class GatedPipeline:
    """What BackgroundRun uses of a Pipeline; each stage runs until the test opens its gate."""

    def __init__(self, until: str = "run", fail: str | None = None, crash: str | None = None) -> None:
        self.spec = SimpleNamespace(name="gated")
        self.config = SimpleNamespace(until=until)
        self.stage_names = STAGES
        self.results: dict[str, FakeResult] = {}
        self.on_event = lambda e: None
        self.gates = {s: threading.Event() for s in STAGES}
        self.started = {s: threading.Event() for s in STAGES}
        self.fail, self.crash = fail, crash

    @property
    def failed(self):
        return next((r for r in self.results.values() if not r.ok), None)

    def open(self, *stages: str) -> None:
        for s in stages or STAGES:
            self.gates[s].set()

    def run(self, until=None, should_stop=None) -> "GatedPipeline":
        for stage in STAGES[: STAGES.index(until or self.config.until) + 1]:
            if stage in self.results:
                continue
            if should_stop is not None and should_stop():
                break
            self.on_event(StageEvent("start", stage))
            self.started[stage].set()
            if stage == self.crash:
                raise RuntimeError("a bug outside any stage")
            self.on_event(StageEvent("progress", stage, 0.5, f"{stage} half way"))
            assert self.gates[stage].wait(TIMEOUT), f"the test never opened {stage}"
            result = FakeResult(stage, ok=stage != self.fail, visible=self.results)
            self.on_event(StageEvent("end", stage, 1.0, "", result))
            self.results[stage] = result
            if not result.ok:
                break
        return self


@pytest.fixture
def gated():
    runs: list[BackgroundRun] = []

    def make(**kwargs) -> tuple[GatedPipeline, BackgroundRun]:
        pipe = GatedPipeline(**kwargs)
        runs.append(BackgroundRun(pipe))
        return pipe, runs[-1]

    yield make
    for run in runs:  # never leave a worker waiting on a gate
        run.stop(by_user=False)
        run.pipe.open()
        run.join(TIMEOUT)


def until_running(run: BackgroundRun, pipe: GatedPipeline, stage: str) -> RunState:
    """The run's state once ``stage`` is the one running (its progress event was handled)."""
    assert pipe.started[stage].wait(TIMEOUT)
    for _ in range(1000):
        s = run.state()
        if s.current == stage and s.text:
            return s
        threading.Event().wait(0.01)
    raise AssertionError(f"{stage} never showed as running: {run.state()}")


def test_stages_stream_in_while_later_ones_run(gated):
    pipe, run = gated()
    assert run.start() is run and run.alive
    pipe.open("trace")
    assert run.wait_for("trace", TIMEOUT)
    s = until_running(run, pipe, "prepare")
    assert s.states["trace"] == DONE and s.states["prepare"] == RUNNING
    assert all(s.states[x] == WAITING for x in STAGES[2:]) and s.pending() == STAGES[1:]
    assert s.ready == ("trace",) and s.running and not s.stopping and not s.stopped
    assert (s.fraction, s.text) == (0.5, "prepare half way") and "trace" in s.finished_at
    assert run.wait_for("prepare", 0.05) is False  # not yet: its gate is shut
    view = run.view()
    assert view.results == pipe.results and view.results is not pipe.results and view is not pipe
    pipe.open()
    assert run.join(TIMEOUT) and list(pipe.results) == list(STAGES)
    s = run.state()
    assert all(v == DONE for v in s.states.values()) and not s.running and s.current is None and run.todo() == []
    assert run.start() is run and not run.alive  # nothing left to run: a no-op


def test_the_worker_snapshots_each_graph_before_the_result_is_visible(gated):
    pipe, run = gated(until="calibrate")
    pipe.open()
    run.start()
    assert run.join(TIMEOUT)
    assert [r.read_before_stored for r in pipe.results.values()] == [[True]] * 3
    assert pipe.on_event(StageEvent("start", "trace")) is None  # the worker's handler is gone after the run


def test_stop_ends_the_run_after_the_current_stage_and_start_continues(gated):
    pipe, run = gated()
    pipe.open("trace")
    run.start()
    until_running(run, pipe, "prepare")
    run.stop()
    s = run.state()
    assert s.stopping and s.states["prepare"] == RUNNING and all(s.states[x] == NOT_RUN for x in STAGES[2:])
    pipe.open("prepare")
    assert run.join(TIMEOUT)
    s = run.state()
    assert s.stopped and not s.running and s.ready == ("trace", "prepare") and run.stopped_by_user
    assert run.todo() == list(STAGES[2:])
    pipe.open()
    run.start()  # Continue
    assert run.join(TIMEOUT) and list(pipe.results) == list(STAGES) and not run.state().stopped


def test_a_stop_not_asked_by_the_user_is_not_shown_as_stopped(gated):
    pipe, run = gated()
    run.start()
    until_running(run, pipe, "trace")
    run.stop(by_user=False)  # the app stops an old configuration's worker so another can run
    pipe.open("trace")
    assert run.join(TIMEOUT)
    assert not run.state().stopped and not run.stopped_by_user and run.state().ready == ("trace",)


def test_a_failed_stage_ends_the_run_and_leaves_nothing_to_do(gated):
    pipe, run = gated(fail="calibrate")
    pipe.open()
    run.start()
    assert run.join(TIMEOUT)
    s = run.state()
    assert s.states["calibrate"] == FAILED and s.ready == ("trace", "prepare", "calibrate")
    assert all(s.states[x] == NOT_RUN for x in STAGES[3:]) and not s.stopped
    assert run.todo() == [] and run.wait_for("convert", 0.01)  # it never will: do not wait


def test_an_exception_outside_the_stages_is_kept_and_not_retried(gated):
    pipe, run = gated(crash="prepare")
    pipe.open()
    run.start()
    assert run.join(TIMEOUT)
    assert isinstance(run.error, RuntimeError) and run.state().current is None
    assert run.start() is run and not run.alive  # a bug: not started again


@pytest.mark.e2e
def test_background_run_stops_after_the_current_stage_and_continues():
    """The real flow: Stop between stages (``Pipeline.run(should_stop=...)``), then Continue."""
    from quantviz import Pipeline, PipelineConfig, load_model

    run = BackgroundRun(Pipeline(load_model("sample:digits_cnn"), PipelineConfig())).start()
    assert run.wait_for("trace", 120) and run.pipe.results["trace"].ok
    run.stop()
    assert run.join(300)
    s = run.state()
    n = len(s.ready)
    assert s.stopped and not s.running and 1 <= n < len(STAGES), s.states
    assert s.ready == STAGES[:n] and all(s.states[x] == "not run" for x in STAGES[n:])
    assert all(r.graph_source is None for r in run.pipe.results.values())  # snapshotted by the worker
    view = run.view()
    assert view.results == run.pipe.results and view.results is not run.pipe.results
    run.start()  # Continue
    assert run.join(600) and run.pipe.ok and not run.state().stopped
    assert [s for s in STAGES if run.state().states[s] == "done"] == list(STAGES)
