"""Shared fixtures: pipeline runs are cached per (model, config) for the whole session."""
from __future__ import annotations

import logging
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


def pytest_configure(config):
    import os
    import sys

    sys.path.insert(0, os.path.dirname(__file__))  # tests/browser.py helpers
