"""Shared fixtures: pipeline runs are cached per (model, config) for the whole session."""
from __future__ import annotations

import logging
import os
import shutil
import warnings

import pytest

from quantviz import Pipeline, PipelineConfig, load_model

warnings.filterwarnings("ignore")
logging.getLogger("torchao").setLevel(logging.ERROR)

_RUNS: dict[tuple, Pipeline] = {}


def run_flow(model: str, **config) -> Pipeline:
    """Run (once per session) ``model`` with ``PipelineConfig(**config)`` and return the pipeline."""
    key = (model, tuple(sorted(config.items())))
    if key not in _RUNS:
        _RUNS[key] = Pipeline(load_model(model), PipelineConfig(**config)).run()
    return _RUNS[key]


@pytest.fixture(scope="session")
def flow():
    return run_flow


@pytest.fixture(autouse=True)
def _stop_app_workers():
    """After a test that ran the app (AppTest), stop its pipelines' worker threads (they finish the current
    stage): a worker left running would go on using the CPU, and torch, under the next tests."""
    yield
    import sys

    runner = sys.modules.get("ui.runner")
    if runner is None:
        return
    runs = list(runner.pipeline_store().values())
    for run in runs:
        run.stop(by_user=False)
    for run in runs:
        run.join(600)


def pytest_configure(config):
    import os
    import sys

    sys.path.insert(0, os.path.dirname(__file__))  # tests/browser.py helpers


# The external programs some tests need, and the Debian package that provides each.
TOOL_PACKAGES = {"chromium": "chromium", "chromium-browser": "chromium", "chromedriver": "chromium-driver",
                 "dot": "graphviz"}


def _missing(what: str, install: str) -> None:
    """Skip the test locally; fail it under CI (``CI=true``), where a skip would let the run pass untested."""
    reason = f"{what} is not installed: {install}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {reason}; a CI run must not skip this test", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str, *alternatives: str) -> str:
    """The path of program ``name`` (or the first of ``alternatives`` found on PATH).

    Missing: skips with the install command in the reason, or fails when ``CI=true``.
    """
    for candidate in (name, *alternatives):
        path = shutil.which(candidate)
        if path:
            return path
    package = TOOL_PACKAGES.get(name, name)
    _missing(f"`{name}`", f"sudo apt-get install -y {package} (scripts/system_deps.sh installs it as root)")
    raise AssertionError("unreachable")  # pytest.skip / pytest.fail raise


def require_module(name: str):
    """``import name``, with the same skip-locally / fail-under-CI rule as ``require_tool``."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        _missing(f"Python module `{name}`", ".venv/bin/pip install -e '.[dev,explorer]' (make install does)")
    raise AssertionError("unreachable")


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
