"""The external programs and optional modules the tests and benchmarks need: found, or a clear skip or failure.

Missing locally: the test skips with the install command in its reason. Missing under ``CI=true``: it fails, so a
CI run never passes without testing what needs the tool (``scripts/system_deps.sh`` installs them as root).

    dot = require_tool("dot")                        # the path, or skip / fail
    webdriver = require_module("selenium.webdriver")
"""
from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType

import pytest

# The external programs some tests need, and the Debian package that provides each.
TOOL_PACKAGES = {"chromium": "chromium", "chromium-browser": "chromium", "chromedriver": "chromium-driver",
                 "dot": "graphviz", "node": "nodejs"}


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


def require_module(name: str) -> ModuleType:
    """``import name``, with the same skip-locally / fail-under-CI rule as ``require_tool``."""
    try:
        return importlib.import_module(name)
    except ImportError:
        _missing(f"Python module `{name}`", ".venv/bin/pip install -e '.[dev,explorer]' (make install does)")
    raise AssertionError("unreachable")
