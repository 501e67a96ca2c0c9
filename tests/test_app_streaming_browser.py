"""Stages stream in, in a real browser: the trace page of a 1,000+-node model is usable while later stages run,
and Stop ends the run after the current stage, keeping the pages of what finished.

The model is tests/fixtures/slow_models.py:make_deep_mlp (256 residual blocks, 1,026 nodes after trace; its
calibration is slow by design), chosen through the sidebar's "Python file" source. Each test starts its own app,
so one test's run never feeds the other; a test's app (and its run) ends with the test. The last test drives the
worker (ui/runner.BackgroundRun) without a browser.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from browser import FLAGS, require_chromium
from conftest import require_module, require_tool
from test_app_browser import free_port, page_text, wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
MODEL_FILE = "tests/fixtures/slow_models.py"
FACTORY = "make_deep_mlp"
GRAPH = "[data-testid=qv-graph] svg"


@pytest.fixture()
def app_url():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true"], cwd=ROOT, env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the app did not start within 60 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture()
def driver():
    webdriver = require_module("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = require_chromium(), require_tool("chromedriver")
    opts = webdriver.ChromeOptions()
    for flag in [*FLAGS, f"--user-data-dir={tempfile.mkdtemp()}", "--window-size=1600,1400"]:
        opts.add_argument(flag.replace("--headless", "--headless=new"))
    opts.binary_location = chromium
    d = webdriver.Chrome(service=Service(chromedriver), options=opts)
    yield d
    d.quit()


def rail_buttons(driver) -> list[str]:
    """The stage rail's ten segments: ``"1 trace ✓"``, ``"2 prepare …"`` (running), ``"3 calibrate ○"`` (waiting),
    ``"4 convert"`` (will not run)."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(20):  # the rail is redrawn every second while stages run
        try:
            return [b.text for b in driver.find_elements("css selector", "button") if re.match(r"^\d+ \w+", b.text)]
        except StaleElementReferenceException:
            time.sleep(0.1)
    raise AssertionError("the rail kept changing for 2 s")


def choose_slow_model(driver, url: str) -> float:
    """Open the app, pick the Python-file source with the deep MLP; returns the time the path was entered."""
    from selenium.webdriver.common.keys import Keys

    driver.get(url)
    source = wait_for(driver, lambda d: next((e for e in d.find_elements("css selector", "[data-testid=stRadio] label")
                                              if e.text.strip() == "Python file"), None))
    source.click()
    factory = wait_for(driver, lambda d: d.find_elements("css selector", "input[aria-label='Factory function']"))[0]
    factory.send_keys(Keys.CONTROL, "a")
    factory.send_keys(FACTORY, Keys.ENTER)
    path = wait_for(driver, lambda d: d.find_elements("css selector", "input[aria-label='File path']"))[0]
    wait_for(driver, lambda d: "Type the path" in page_text(d))
    path.send_keys(MODEL_FILE, Keys.ENTER)
    return time.monotonic()


def wait_for_trace_graph(driver) -> None:
    wait_for(driver, lambda d: "deep_mlp" in page_text(d) and "1. trace" in page_text(d)
             and d.find_elements("css selector", GRAPH))


def click_a_node(driver) -> str:
    """Click the first graph box that is a node (not a collapsed module); returns its id."""
    nodes = wait_for(driver, lambda d: [g for g in d.find_elements("css selector", "[data-testid=qv-graph] g.node")
                                        if not g.get_attribute("id").startswith(("qv_module/", "qv_open/"))])
    target = nodes[0]
    node_id = target.get_attribute("id").removeprefix("qv_")
    driver.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", target)
    return node_id


def test_the_trace_page_is_usable_while_later_stages_run(driver, app_url):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    t0 = choose_slow_model(driver, app_url)
    wait_for_trace_graph(driver)
    seconds_to_graph = time.monotonic() - t0
    text = page_text(driver)
    assert re.search(r"1026 nodes (collapsed to|in) \d+ boxes", text), text  # the whole graph, collapsed by module
    assert "running:" in text and "waiting:" in text, text[:1500]  # later stages still run
    rail = rail_buttons(driver)
    assert rail[0] == "1 trace ✓" and rail[-1] == "10 run ○" and len(rail) == 10, rail
    assert sum(b.endswith("…") for b in rail) == 1 and sum(b.endswith("○") for b in rail) >= 7, rail
    node_id = click_a_node(driver)
    wait_for(driver, lambda d: "Inspector" in page_text(d) and f"{node_id} · " in page_text(d))
    text = page_text(driver)
    assert "running:" in text, text[:1500]  # still running while the node is inspected
    assert rail_buttons(driver)[-1] == "10 run ○"
    driver.save_screenshot(str(ARTIFACTS / "streaming_trace_while_running.png"))
    (ARTIFACTS / "streaming_timing.json").write_text(json.dumps({"seconds_from_choice_to_trace_graph":
                                                                 round(seconds_to_graph, 2)}))
    # a later stage's page appears when it is ready, while the trace page stays on screen
    wait_for(driver, lambda d: "2 prepare ✓" in rail_buttons(d), timeout=240)
    assert "1. trace" in page_text(driver) and driver.find_elements("css selector", GRAPH)


def test_stop_ends_the_run_after_the_current_stage_and_keeps_what_finished(driver, app_url):
    choose_slow_model(driver, app_url)
    wait_for_trace_graph(driver)
    stop = wait_for(driver, lambda d: next((b for b in d.find_elements("css selector", "button")
                                            if b.text == "Stop"), None))
    stop.click()
    wait_for(driver, lambda d: "Stopped. Not run:" in page_text(d), timeout=300)
    rail = rail_buttons(driver)
    done = [b for b in rail if b.endswith("✓")]
    # trace, and prepare or calibrate (running when Stop was pressed: calibrate takes 8 s or more)
    assert done == rail[:len(done)] and done[0] == "1 trace ✓" and 2 <= len(done) <= 3, rail
    assert all(b[-1].isalpha() for b in rail[len(done):]), rail  # no mark: will not run
    stopped_at = done[-1].split(" ")[1]
    not_run = next(line for line in page_text(driver).splitlines() if line.startswith("Stopped. Not run:"))
    assert "run" in not_run and "convert" in not_run and not any("running:" in line
                                                                 for line in page_text(driver).splitlines())
    # earlier pages stay: step to the last finished stage and back to trace
    next(b for b in driver.find_elements("css selector", "button") if b.text == done[-1]).click()
    n = done[-1].split(" ")[0]
    wait_for(driver, lambda d: f"{n}. {stopped_at}" in page_text(d) and d.find_elements("css selector", GRAPH))
    next(b for b in driver.find_elements("css selector", "button") if b.text == "1 trace ✓").click()
    wait_for(driver, lambda d: "1. trace" in page_text(d) and d.find_elements("css selector", GRAPH))
    time.sleep(3)  # nothing runs: the rail stays as it was
    assert rail_buttons(driver) == rail and "Stopped. Not run:" in page_text(driver)
    driver.save_screenshot(str(ARTIFACTS / "streaming_stopped.png"))


def test_background_run_stops_after_the_current_stage_and_continues():
    """The worker without a browser: Stop between stages (``Pipeline.run(should_stop=...)``), then Continue."""
    from quantviz import Pipeline, PipelineConfig, load_model
    from quantviz.config import STAGES

    sys.path.insert(0, str(ROOT))  # ui/ is the app's folder, not an installed package
    from ui.runner import BackgroundRun

    run = BackgroundRun(Pipeline(load_model("sample:digits_cnn"), PipelineConfig())).start()
    assert run.wait_for("trace", 120) and run.pipe.results["trace"].ok
    run.stop()
    assert run.join(300)
    s = run.state()
    n = len(s.ready)
    assert s.stopped and not s.running and 1 <= n < len(STAGES), s.states
    assert s.ready == STAGES[:n] and all(s.states[x] == "not run" for x in STAGES[n:])
    assert all(r.graph_source is None for r in run.pipe.results.values())  # snapshotted by the worker
    view = run.view()
    assert view.results == run.pipe.results and view.results is not run.pipe.results
    run.start()  # Continue
    assert run.join(600) and run.pipe.ok and not run.state().stopped
    assert [s for s in STAGES if run.state().states[s] == "done"] == list(STAGES)
