"""Two pipelines in one process: a model is built while another model's stage traces in a worker thread.

fx's symbolic tracing patches ``nn.Module.__call__`` / ``__getattr__`` process-wide while it traces, so building
a model at that moment can fail inside the user's factory ("NameError: module is not installed as a
submodule"): the app did, when a model was chosen while another one's stage ran, and so did a test run after an
AppTest whose worker thread was still tracing. The first test shows the hazard with plain torch calls (the lock
is not there for nothing); the others that stages and factories take turns under ``quantviz.torch_lock``.
"""
from __future__ import annotations

import threading

import pytest

from quantviz import LoadError, Pipeline, PipelineConfig, load_model
from quantviz.torch_lock import TORCH_LOCK

pytestmark = pytest.mark.e2e
SLOW = "tests/fixtures/slow_models.py:make_deep_mlp"
VIT = "bench/viewer.py:make_model"


def trace_repeatedly(rounds: int, ok: list[bool]) -> threading.Thread:
    """A thread running the trace stage of the 1,026-node deep MLP ``rounds`` times (each outcome into ``ok``)."""
    def work() -> None:
        for _ in range(rounds):
            ok.append(Pipeline(load_model(SLOW), PipelineConfig(until="trace")).run().ok)
    t = threading.Thread(target=work, daemon=True)
    t.start()
    return t


def test_building_a_model_while_fx_traces_fails(monkeypatch):
    """Deterministic: the model is built in the middle of a trace (from the tracer's own hook), which is what a
    second thread does when its timing is unlucky."""
    from torch import fx

    from tests.fixtures.slow_models import DeepMLP

    monkeypatch.setenv("QUANTVIZ_BENCH_VIT_BLOCKS", "4")
    failures, tried = [], []

    class BuildMidTrace(fx.Tracer):
        def call_module(self, m, forward, args, kwargs):
            if not tried:
                tried.append(m)
                try:
                    load_model(VIT)
                except LoadError as exc:
                    failures.append(str(exc))
            return super().call_module(m, forward, args, kwargs)

    BuildMidTrace().trace(DeepMLP(blocks=2))
    assert len(failures) == 1 and "not installed as a submodule" in failures[0], failures
    assert load_model(VIT).name == "vit_4_blocks"  # outside a trace it builds


def test_factories_wait_for_a_stage_running_in_another_thread(monkeypatch):
    monkeypatch.setenv("QUANTVIZ_BENCH_VIT_BLOCKS", "4")
    traced: list[bool] = []
    tracer = trace_repeatedly(3, traced)
    loads = 0
    while tracer.is_alive():
        assert load_model(VIT).name == "vit_4_blocks"  # raised LoadError(NameError ...) before the lock
        loads += 1
    assert loads >= 1 and traced == [True] * 3


def test_the_app_runner_loads_a_model_between_stages(monkeypatch):
    from ui import runner

    monkeypatch.setenv("QUANTVIZ_BENCH_VIT_BLOCKS", "4")
    assert runner.TORCH_LOCK is TORCH_LOCK  # the pages' lock is the stages' lock
    traced: list[bool] = []
    tracer = trace_repeatedly(3, traced)
    loads = 0
    while tracer.is_alive():
        loads += 1
        pipe = runner._new_pipeline({}, f"{VIT}#{loads}", lambda: load_model(VIT), PipelineConfig(),
                                    frozenset())
        assert pipe.spec.name == "vit_4_blocks"
    assert loads >= 1 and traced == [True] * 3
