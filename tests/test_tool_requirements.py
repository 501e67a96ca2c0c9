"""The tool-requirement helper itself: a missing browser or `dot` skips a local run and fails a CI run."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from quantviz_devtools import tools
from quantviz_devtools.tools import require_module, require_tool

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_tools(monkeypatch):
    """PATH lookups find nothing."""
    monkeypatch.setattr(tools.shutil, "which", lambda name: None)


@pytest.mark.parametrize("tool, package", [("chromium", "chromium"), ("chromedriver", "chromium-driver"),
                                           ("dot", "graphviz")])
def test_missing_tool_fails_under_ci(no_tools, monkeypatch, tool, package):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as err:
        require_tool(tool)
    assert "CI=true" in str(err.value) and f"sudo apt-get install -y {package}" in str(err.value)


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_missing_tool_skips_outside_ci_with_the_install_command(no_tools, monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception) as err:
        require_tool("chromium", "chromium-browser")
    assert "sudo apt-get install -y chromium" in str(err.value) and "system_deps.sh" in str(err.value)


def test_present_tool_returns_its_path_and_tries_the_alternatives(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(tools.shutil, "which", {"chromium-browser": "/opt/cb"}.get)
    assert require_tool("chromium", "chromium-browser") == "/opt/cb"


def test_missing_module_fails_under_ci_and_skips_outside(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        require_module("quantviz_no_such_module")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="pip install"):
        require_module("quantviz_no_such_module")


@pytest.mark.parametrize("ci, says", [("true", "FAIL"), ("", "skip")])
def test_system_deps_says_what_the_tests_will_do(tmp_path, ci, says):
    """With nothing installed and no root, the script only warns: the warning names what the tests will do."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "id").write_text("#!/bin/sh\necho 1000\n")  # not root: the script must not try apt-get
    (bindir / "id").chmod(0o755)
    env = {"PATH": str(bindir), "CI": ci}
    proc = subprocess.run([shutil.which("bash"), str(ROOT / "scripts" / "system_deps.sh")], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert "graphviz" in proc.stderr and "chromium-driver" in proc.stderr
    assert says in proc.stderr, proc.stderr
