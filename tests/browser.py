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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(root, env: dict[str, str] | None = None, timeout: float = 90):
    """``streamlit run app.py`` on a free loopback port: (url, process). Stop it with ``proc.terminate()``.

    >>> url, proc = start_app(ROOT, {"QUANTVIZ_DEFAULT_MODEL": "sample:digits_cnn"})
    """
    import os
    import sys
    import time
    import urllib.request

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true"], cwd=root, env=dict(os.environ, **(env or {})),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                return url, proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"the app did not start within {timeout:.0f} s")


def chrome_driver(width: int = 1600, height: int = 1400):
    """Selenium's Chrome driving Debian's Chromium (skips locally, fails under CI=true, when either is missing).

    >>> d = chrome_driver(); d.get(url); d.quit()
    """
    from conftest import require_module

    webdriver = require_module("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = require_chromium(), require_tool("chromedriver")
    opts = webdriver.ChromeOptions()
    for flag in [*FLAGS, f"--user-data-dir={tempfile.mkdtemp()}", f"--window-size={width},{height}"]:
        opts.add_argument(flag.replace("--headless", "--headless=new"))
    opts.binary_location = chromium
    return webdriver.Chrome(service=Service(chromedriver), options=opts)


def wait_for(driver, condition, timeout: float = 300):
    """``condition(driver)`` once it is truthy, polled every 0.2 s (elements a rerun replaced are retried)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(condition)
