"""The app in headless Chromium, for the browser tests and benchmarks: start the app, drive the browser, find and
click things across Streamlit's reruns.

Chromium, chromedriver or selenium missing: `quantviz_devtools.tools.require_tool` / `require_module` skip
locally (with the install command) and fail under CI=true. Every helper tolerates Streamlit replacing an element between finding
and using it (a rerun redraws the page): it finds the element again.

    with running_app({"QUANTVIZ_DEFAULT_MODEL": "sample:digits_cnn"}) as url:
        d = chrome_driver(); d.get(url)
        go_to_stage(d, "fuse")
        click_button(d, "Compare node by node")
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

from quantviz.flows import FLOWS
from quantviz_devtools.tools import require_module, require_tool

ROOT = Path(__file__).resolve().parents[1]  # the checkout: app.py is run from there
ARTIFACTS = ROOT / "tests" / "artifacts"  # screenshots and timings the browser tests leave (gitignored)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"  # only the local app answers


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


# -- the app -------------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(root: Path = ROOT, env: dict[str, str] | None = None,
              timeout: float = 90) -> tuple[str, subprocess.Popen]:
    """``streamlit run app.py`` on a free loopback port: (url, process). Stop it with ``proc.terminate()``.

    >>> url, proc = start_app(ROOT, {"QUANTVIZ_DEFAULT_MODEL": "sample:digits_cnn"})
    """
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


@contextlib.contextmanager
def running_app(env: dict[str, str] | None = None) -> Iterator[str]:
    """The app's url while the block runs (for fixtures); the app and its worker threads end after it."""
    url, proc = start_app(ROOT, env)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# -- the browser ---------------------------------------------------------------------------------------------------
def chrome_driver(width: int = 1600, height: int = 1400, offline: bool = False) -> Any:
    """Selenium's Chrome driving Debian's Chromium (skips locally, fails under CI=true, when either is missing).

    >>> d = chrome_driver(); d.get(url); d.quit()
    """
    webdriver = require_module("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = require_chromium(), require_tool("chromedriver")
    opts = webdriver.ChromeOptions()
    flags = [*FLAGS, *([OFFLINE] if offline else []), f"--user-data-dir={tempfile.mkdtemp()}",
             f"--window-size={width},{height}"]
    for flag in flags:
        opts.add_argument(flag.replace("--headless", "--headless=new"))
    opts.binary_location = chromium
    return webdriver.Chrome(service=Service(chromedriver), options=opts)


def wait_for(driver: Any, condition: Callable, timeout: float = 300) -> Any:
    """``condition(driver)`` once it is truthy, polled every 0.2 s (elements a rerun replaced are retried)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(condition)


def page_text(driver: Any) -> str:
    return driver.find_element("tag name", "body").text


def run_ended(driver: Any) -> bool:
    """The rail says the run is over: its last stage done or failed (or some not run), nothing running or waiting,
    no Stop button. The end of a run redraws the whole page once, replacing every element."""
    text = page_text(driver)
    over = re.search(r"\d+ run [✓✗]", text) or "Not run:" in text
    return bool(over) and "running:" not in text and "waiting:" not in text and find_button(driver, "Stop") is None


def find_button(driver: Any, text: str, prefix: bool = False) -> Any:
    """The first button whose text is ``text`` (starts with it, with ``prefix``), or None."""
    return next((b for b in driver.find_elements("css selector", "button")
                 if (b.text.startswith(text) if prefix else b.text == text)), None)


def click_button(driver: Any, text: str, prefix: bool = False, timeout: float = 300) -> None:
    """Click the button ``text`` once it is there (found again when a rerun replaced it before the click)."""
    wait_for(driver, lambda d: _clicked(find_button(d, text, prefix)), timeout)


def _clicked(element, driver=None) -> bool:
    """Click ``element`` (with a dispatched event when ``driver`` is given); False when there is none."""
    if element is None:
        return False
    if driver is None:
        element.click()
    else:
        click(driver, element)
    return True


def click(driver: Any, element: Any) -> None:
    """A click event on ``element`` (for SVG nodes, which WebDriver's own click cannot always reach)."""
    driver.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", element)


def click_until(driver: Any, find: Callable, done: Callable, tries: int = 40, each: float = 15,
                svg: bool = False) -> None:
    """Click what ``find(driver)`` gives until ``done(driver)`` holds, waiting ``each`` s after each click (a
    rerun that replaced the element, or swallowed the click, gets another click). ``svg``: dispatch the click
    event (graph boxes), else WebDriver's own click (buttons)."""
    from selenium.common.exceptions import TimeoutException

    for _ in range(tries):
        wait_for(driver, lambda d: _clicked(find(d), d if svg else None))
        try:
            wait_for(driver, done, each)
            return
        except TimeoutException:
            continue
    raise AssertionError(f"{tries} clicks did not get there")


def go_to_stage(driver: Any, stage: str, flow: str = "fx", graph: bool = True) -> None:
    """Open ``stage`` of ``flow`` with the rail and wait for its page: its title and, with ``graph``, its graph (the
    run stage's page has none; nor have the quantize stage and a stage the flow does not have)."""
    number = FLOWS[flow].number(stage)
    click_until(driver, lambda d: find_button(d, f"{number} {stage}", prefix=True),
                lambda d: f"{number}. {stage}" in page_text(d)
                and (stage == "run" or not graph or d.find_elements("css selector", "[data-testid=qv-graph]")))


def choose(driver: Any, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label``. A click that a rerun swallowed (the list never opened)
    is made again, after 3 s without any option listed."""
    from selenium.common.exceptions import ElementClickInterceptedException, ElementNotInteractableException

    last_click = [0.0]

    def open_list(d) -> None:
        box = selectbox(d, label)
        if box is None:
            return
        # mid-window: not under the sticky rail when the page has scrolled
        d.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
        last_click[0] = time.monotonic()
        try:
            box.find_element("css selector", "input").click()
        except (ElementClickInterceptedException, ElementNotInteractableException):  # mid-rerun: try again
            pass

    def picked(d) -> bool:
        options = d.find_elements("css selector", "[role=option]")
        if not options and time.monotonic() - last_click[0] > 3:
            open_list(d)
            return False
        return _clicked(next((o for o in options if o.text.strip() == option), None))

    wait_for(driver, lambda d: selectbox(d, label))
    wait_for(driver, picked, 60)


def selectbox(driver: Any, label: str) -> Any:
    """The selectbox labelled ``label`` on the page now, or None."""
    return next((b for b in driver.find_elements("css selector", "[data-testid=stSelectbox]")
                 if b.text.startswith(label)), None)


def choose_source(driver: Any, label: str) -> None:
    """Click the sidebar's model source ``label`` ("Sample model", "Python file", ...)."""
    wait_for(driver, lambda d: _clicked(next((e for e in d.find_elements("css selector", "[data-testid=stRadio] label")
                                              if e.text.strip() == label), None)))


def choose_python_file(driver: Any, path: str, factory: str) -> float:
    """Choose the sidebar's "Python file" source, type ``factory`` and ``path``; the time the path was entered
    (``time.monotonic()``), for measuring how soon its graph is on screen."""
    from selenium.webdriver.common.keys import Keys

    choose_source(driver, "Python file")
    box = wait_for(driver, lambda d: d.find_elements("css selector", "input[aria-label='Factory function']"))[0]
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(factory, Keys.ENTER)
    wait_for(driver, lambda d: "Type the path" in page_text(d))
    return enter_file_path(driver, path)


def enter_file_path(driver: Any, path: str) -> float:
    """Replace the sidebar's "File path" with ``path`` (Python file source chosen); the time it was entered."""
    from selenium.webdriver.common.keys import Keys

    box = wait_for(driver, lambda d: d.find_elements("css selector", "input[aria-label='File path']"))[0]
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(path, Keys.ENTER)
    return time.monotonic()


def new_session(driver: Any, url: str) -> str:
    """Open ``url`` in a new tab (its own Streamlit session) and switch to it; its window handle."""
    driver.switch_to.new_window("tab")
    driver.get(url)
    return driver.current_window_handle
