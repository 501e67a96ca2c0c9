"""Headless Chromium for tests: the flags this machine needs; where it is missing, conftest.require_tool skips
locally (with the install command) and fails under CI=true."""
from __future__ import annotations

import subprocess
import tempfile

from conftest import require_tool

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require_chromium() -> str:
    return require_tool("chromium", "chromium-browser")


def dump_dom(url: str, offline: bool = True, timeout: float = 120) -> str:
    """The DOM Chromium builds for ``url`` after its scripts ran."""
    args = [require_chromium(), *FLAGS, f"--user-data-dir={tempfile.mkdtemp()}", "--dump-dom", url]
    if offline:  # no name resolves: the page must need no network
        args.insert(1, "--host-resolver-rules=MAP * ~NOTFOUND")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout
