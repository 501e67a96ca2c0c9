"""Headless Chromium for tests: the flags this machine needs, and a skip message where it is missing."""
from __future__ import annotations

import shutil
import subprocess
import tempfile

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require_chromium() -> str:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (scripts/system_deps.sh installs Debian's chromium as root)")
    return CHROMIUM


def dump_dom(url: str, offline: bool = True, timeout: float = 120) -> str:
    """The DOM Chromium builds for ``url`` after its scripts ran."""
    args = [require_chromium(), *FLAGS, f"--user-data-dir={tempfile.mkdtemp()}", "--dump-dom", url]
    if offline:  # no name resolves: the page must need no network
        args.insert(1, "--host-resolver-rules=MAP * ~NOTFOUND")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout
