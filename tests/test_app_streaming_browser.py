"""Stages stream in, in a real browser: the trace page of a 1,000+-node model is usable while later stages run,
and Stop ends the run at once (the running stage is killed with its session worker), keeping the pages of what
finished; a stage chosen before it ran keeps its title when the run ends.

The model is tests/fixtures/slow_models.py:make_deep_mlp (256 residual blocks, 1,026 nodes after trace; its
calibration is slow by design), chosen through the sidebar's "Python file" source. Each test starts its own app,
so one test's run never feeds the other; a test's app (and its run) ends with the test. The worker without a browser
(quantviz.background.BackgroundRun) is tests/test_background.py's.
"""
from __future__ import annotations

import re
import time

import pytest

from quantviz_devtools.browser import (ARTIFACTS, choose_python_file, chrome_driver, click_button, click_until,
                                       find_button, page_text, run_ended, running_app, wait_for)

pytestmark = pytest.mark.e2e
MODEL_FILE = "tests/fixtures/slow_models.py"
FACTORY = "make_deep_mlp"
GRAPH = "[data-testid=qv-graph] svg"


@pytest.fixture()
def app_url():
    with running_app() as url:
        yield url


@pytest.fixture()
def driver():
    d = chrome_driver(1600, 1400)
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
    """Open the app and choose the deep MLP as a Python file; returns the time the path was entered."""
    driver.get(url)
    return choose_python_file(driver, MODEL_FILE, FACTORY)


def wait_for_trace_graph(driver) -> None:
    wait_for(driver, lambda d: "deep_mlp" in page_text(d) and "1. trace" in page_text(d)
             and d.find_elements("css selector", GRAPH))


def click_a_node(driver) -> str:
    """Click the first graph box that is a node (not a collapsed module) until the inspector shows it; its id."""
    node_id = wait_for(driver, lambda d: next((i for i in (g.get_attribute("id") for g in d.find_elements(
        "css selector", "[data-testid=qv-graph] g.node")) if not i.startswith(("qv_module/", "qv_open/"))), None))
    node_id = node_id.removeprefix("qv_")
    click_until(driver, lambda d: d.find_element("css selector", f"g.node[id='qv_{node_id}']"),
                lambda d: "Inspector" in page_text(d) and f"{node_id} · " in page_text(d), svg=True)
    return node_id


def test_the_trace_page_is_usable_while_later_stages_run(driver, app_url):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    choose_slow_model(driver, app_url)
    wait_for_trace_graph(driver)  # how soon: bench/first_graph_streaming.py
    text = page_text(driver)
    assert re.search(r"1026 nodes (collapsed to|in) \d+ boxes", text), text  # the whole graph, collapsed by module
    # later stages still run: one running (stages take turns for the lock, so there are gaps between them), the
    # rest waiting; one reading of the rail
    rail = wait_for(driver, lambda d: (lambda r: r if sum(b.endswith("…") for b in r) == 1 else None)(
        rail_buttons(d)), 60)
    assert rail[0] == "1 trace ✓" and rail[-1] == "10 run ○" and len(rail) == 10, rail
    assert sum(b.endswith("○") for b in rail) >= 6, rail
    assert "waiting:" in page_text(driver)
    node_id = click_a_node(driver)
    wait_for(driver, lambda d: "Inspector" in page_text(d) and f"{node_id} · " in page_text(d))
    text = page_text(driver)
    assert "running:" in text or "waiting:" in text, text[:1500]  # the run goes on while the node is inspected
    assert rail_buttons(driver)[-1] == "10 run ○"
    driver.save_screenshot(str(ARTIFACTS / "streaming_trace_while_running.png"))
    # a later stage's page appears when it is ready, while the trace page stays on screen
    wait_for(driver, lambda d: "2 prepare ✓" in rail_buttons(d), timeout=240)
    assert "1. trace" in page_text(driver) and driver.find_elements("css selector", GRAPH)


def test_stop_ends_the_run_at_once_and_keeps_what_finished(driver, app_url):
    choose_slow_model(driver, app_url)
    wait_for_trace_graph(driver)
    # the Stop button sits in the rail's fragment, redrawn every second: a click between two drawings is lost, so
    # click again until the page says the run is stopping (or stopped)
    click_until(driver, lambda d: find_button(d, "Stop"),
                lambda d: "stopping after this stage" in page_text(d) or "Stopped. Not run:" in page_text(d), each=5)
    wait_for(driver, lambda d: "Stopped. Not run:" in page_text(d), timeout=300)
    rail = rail_buttons(driver)
    done = [b for b in rail if b.endswith("✓")]
    # trace, and the stages that finished before Stop (the running one was killed: it has no mark)
    assert done == rail[:len(done)] and done[0] == "1 trace ✓" and 1 <= len(done) < len(rail), rail
    assert all(b[-1].isalpha() for b in rail[len(done):]), rail  # no mark: will not run
    stopped_at = done[-1].split(" ")[1]
    not_run = next(line for line in page_text(driver).splitlines() if line.startswith("Stopped. Not run:"))
    assert "run" in not_run and "convert" in not_run and not any("running:" in line
                                                                 for line in page_text(driver).splitlines())
    # earlier pages stay: step to the last finished stage and back to trace
    click_button(driver, done[-1])
    n = done[-1].split(" ")[0]
    wait_for(driver, lambda d: f"{n}. {stopped_at}" in page_text(d) and d.find_elements("css selector", GRAPH))
    click_button(driver, "1 trace ✓")
    wait_for(driver, lambda d: "1. trace" in page_text(d) and d.find_elements("css selector", GRAPH))
    time.sleep(3)  # nothing runs: the rail stays as it was
    assert rail_buttons(driver) == rail and "Stopped. Not run:" in page_text(driver)
    driver.save_screenshot(str(ARTIFACTS / "streaming_stopped.png"))


def test_a_stage_chosen_before_it_ran_keeps_its_page_title_when_the_run_ends():
    """A regression: the run stage clicked while its run was still going (here: right after a config change) drew
    its page without the "10. run" title once the run ended (the rail's fragment lost its status line and the page
    below it lost an element). digits_cnn, fusion changed to quantviz's kernels: the flow runs again from fuse."""
    from quantviz_devtools.browser import choose

    driver = chrome_driver(1500, 1900, offline=True)  # the whole run page on one screen
    try:
        with running_app({"QUANTVIZ_DEFAULT_MODEL": "sample:digits_cnn"}) as url:
            driver.get(url)
            wait_for(driver, lambda d: d.find_elements("css selector", GRAPH))
            choose(driver, "Fusion", "quantviz")
            time.sleep(2)
            click_button(driver, "10 run", prefix=True)  # while the flow runs again
            wait_for(driver, lambda d: find_button(d, "Compare node by node") is not None, timeout=300)
            wait_for(driver, run_ended, timeout=60)  # the rail redrawn
            time.sleep(3)
            text = page_text(driver)
    finally:
        driver.quit()
    assert "10. run" in text and "Loads the .pte" in text, text[:1500]
