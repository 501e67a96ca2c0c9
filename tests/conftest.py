"""Shared fixtures: pipeline runs are cached per (model, config) for the whole session."""
from __future__ import annotations

import logging
import os
import shutil
import warnings

import pytest

from quantviz import Pipeline, PipelineConfig, load_model

warnings.filterwarnings("ignore")
# the app opens on pt2e + XNNPACK (ui.sidebar.app_defaults); the app tests written step by step through the fx flow
# open it on fx; the first-screen tests (test_sessions_browser, test_app's defaults test) set "" to see the default
os.environ.setdefault("QUANTVIZ_DEFAULT_FLOW", "fx")
logging.getLogger("torchao").setLevel(logging.ERROR)

_RUNS: dict[tuple, Pipeline] = {}


def run_flow(model: str, **config) -> Pipeline:
    """Run (once per session) ``model`` with ``PipelineConfig(**config)`` and return the pipeline; the fields given are
    the user's choices (a backend's declared defaults apply to the others: ``with_backend_defaults``)."""
    key = (model, tuple(sorted(config.items())))
    if key not in _RUNS:
        _RUNS[key] = Pipeline(load_model(model), PipelineConfig(**config), explicit=frozenset(config)).run()
    return _RUNS[key]


@pytest.fixture(scope="session")
def flow():
    return run_flow


def _end_app_runs(drop: bool) -> None:
    """Stop the app's kept runs (AppTest's) and wait for them; a session worker's process ends too; ``drop``: they
    leave the store (a later page starts its own)."""
    import sys

    runner = sys.modules.get("ui.runner")
    if runner is None:
        return
    store = runner.pipeline_store()
    runs = list(store.items())
    for _, run in runs:
        run.stop(by_user=False)
    for key, run in runs:
        run.join(600)
        if hasattr(run, "close"):  # a session worker (the app's default): its process ends too
            run.close()
        if drop:
            store.pop(key, None)
    if drop:
        runner.viewers().by_run.clear()  # which sessions showed them: AppTest sessions never say they closed


@pytest.fixture(autouse=True)
def _stop_app_workers():
    """After a test that ran the app (AppTest), stop its pipelines' workers: a worker left running would go on using
    the CPU, and torch, under the next tests."""
    yield
    _end_app_runs(drop=False)


@pytest.fixture
def fresh_app_store():
    """The app's store empty before and after the test: the runs in it are the test's own."""
    import ui.runner  # noqa: F401 - the store lives there

    _end_app_runs(drop=True)
    yield
    _end_app_runs(drop=True)


@pytest.fixture
def patch_stage(monkeypatch):
    """``patch_stage("capture", run)``: every flow's ``capture`` stage runs ``run`` instead, for this test.

    Flows are frozen records: the registry ``quantviz.flows.FLOWS`` gets copies whose slot is replaced."""
    import dataclasses

    from quantviz import flows

    def patch(name: str, run) -> None:
        for key, flow in list(flows.FLOWS.items()):
            slots = tuple(dataclasses.replace(s, run=run) if getattr(s, "name", None) == name
                          and hasattr(s, "run") else s for s in flow.slots)
            monkeypatch.setitem(flows.FLOWS, key, dataclasses.replace(flow, slots=slots))

    return patch
