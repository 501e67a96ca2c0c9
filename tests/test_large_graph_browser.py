"""Finding and seeing nodes in a torchao graph, in real Chromium at 1600x1000 (``sample:tiny_transformer``, the torchao
flow: 85 nodes on capture, six XNNPACK delegates on emit). Screenshots under tests/artifacts/: capture_fitted.png,
capture_found.png, emit_found.png.

- capture and emit open fitted to their patterns / delegates: every pattern (delegate) cluster inside the pane;
- "Find a node" lists every node whose name contains the text (all nine ``dequantize_affine_<n>``), and choosing one
  in a graph collapsed by module opens the modules around it, centres it and rings it; the inspector's cells wrap
  (none is cut off);
- on emit, choosing an op inside a delegate draws the delegate's ops and reveals that op.
"""
from __future__ import annotations

import pytest

from quantviz import Pipeline, PipelineConfig, load_model
from quantviz_devtools.browser import (ARTIFACTS, _clicked, chrome_driver, choose, go_to_stage, page_text, run_ended,
                                       running_app, selectbox, wait_for)
from quantviz_devtools.tools import require_tool

pytestmark = pytest.mark.e2e
MODEL = "sample:tiny_transformer"
GRAPH = "[data-testid=qv-graph]"


@pytest.fixture(scope="module")
def capture_ids() -> list[str]:
    """The capture graph's node ids, in order (the app exports the same program)."""
    pipe = Pipeline(load_model(MODEL), PipelineConfig(flow="torchao", until="capture")).run()
    return [n.id for n in pipe.results["capture"].graph.nodes]


@pytest.fixture(scope="module")
def driver():
    require_tool("dot")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with running_app({"QUANTVIZ_DEFAULT_MODEL": MODEL, "QUANTVIZ_DEFAULT_FLOW": "torchao"}) as url:
        d = chrome_driver(1600, 1000)
        d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                          {"width": 1600, "height": 1000, "deviceScaleFactor": 1, "mobile": False})
        try:
            d.get(url)
            wait_for(d, lambda d: d.find_elements("css selector", f"{GRAPH} svg"), 600)
            wait_for(d, run_ended, 900)  # the end of the run redraws the page once: not in the middle of a test
            yield d
        finally:
            d.quit()


def clusters_in_pane(driver, prefix: str) -> tuple[list, list]:
    """The clusters whose id starts with ``prefix``: (those wholly inside the graph's pane, those cut by its edge)."""
    return driver.execute_script(
        "const root = document.querySelector(arguments[1]), p = root.querySelector('.qv-viewport')"
        ".getBoundingClientRect(), inside = [], cut = [];"
        "for (const g of root.querySelectorAll(`g.cluster[id^='${arguments[0]}']`)) {"
        "  const r = g.getBoundingClientRect();"
        "  const whole = r.left >= p.left - 1 && r.right <= p.right + 1 && r.top >= p.top - 1 && r.bottom <= p.bottom + 1;"
        "  const out = r.right <= p.left || r.left >= p.right || r.bottom <= p.top || r.top >= p.bottom;"
        "  if (whole) inside.push(g.id); else if (!out) cut.push(g.id); }"
        "return [inside, cut];", prefix, GRAPH)


def shown_in_pane(driver, node_id: str) -> bool:
    """The node's box is drawn, ringed, and wholly inside the pane and the window."""
    return driver.execute_script(
        "const root = document.querySelector(arguments[1]);"
        "const g = root && root.querySelector(`g.node[id='${CSS.escape('qv_' + arguments[0])}']`);"
        "if (!g || root.dataset.highlighted !== arguments[0]) return false;"
        "const r = g.getBoundingClientRect(), p = root.querySelector('.qv-viewport').getBoundingClientRect();"
        "return r.width > 0 && r.left >= p.left && r.right <= p.right && r.top >= p.top && r.bottom <= p.bottom"
        "  && r.top >= 0 && r.bottom <= window.innerHeight;",
        node_id, GRAPH)


def find_box(driver):
    return wait_for(driver, lambda d: selectbox(d, "Find a node"))


def options_for(driver, text: str) -> list[str]:
    """Type ``text`` in "Find a node"; the options it lists (once the list has settled)."""
    from selenium.webdriver.common.keys import Keys

    field = find_box(driver).find_element("css selector", "input")
    if driver.find_elements("css selector", "[role=option]"):  # a list left open: a click would close it
        close_list(driver)
    field.click()
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(text)
    seen: list[list[str]] = []

    def settled(d):  # the same list twice in a row, every option containing the text
        now = [o.text.strip() for o in d.find_elements("css selector", "[role=option]")]
        seen.append(now)
        return now if len(seen) > 1 and seen[-2] == now and now and all(text in o for o in now) else None
    return wait_for(driver, settled, 30)


def close_list(driver) -> None:
    """Close "Find a node"'s list (it covers the View expander)."""
    from selenium.webdriver.common.keys import Keys

    find_box(driver).find_element("css selector", "input").send_keys(Keys.ESCAPE)
    wait_for(driver, lambda d: not d.find_elements("css selector", "[role=option]"), 10)


def pick(driver, node_id: str) -> None:
    """Choose ``node_id`` in "Find a node" (its own option, clicked)."""
    options_for(driver, node_id)
    wait_for(driver, lambda d: _clicked(next((o for o in d.find_elements("css selector", "[role=option]")
                                              if o.text.strip() == node_id), None)), 30)


def cut_cells(driver) -> list:
    """The inspector's table cells whose text does not fit their box (cut off), as [text, scroll, client width]."""
    return driver.execute_script(
        "const col = document.querySelector('.st-key-qv_inspector').getBoundingClientRect();"
        "return [...document.querySelectorAll('.st-key-qv_inspector [data-testid=stTable] :is(td, th)')]"
        ".filter((c) => c.scrollWidth > c.clientWidth + 1 || c.getBoundingClientRect().right > col.right + 1)"
        ".map((c) => [c.innerText, c.scrollWidth, c.clientWidth]);")


def test_capture_opens_fitted_to_its_patterns(driver):
    go_to_stage(driver, "capture", "torchao")
    inside, cut = wait_for(driver, lambda d: (r := clusters_in_pane(d, "qv_pattern_"))[0] and r, 60)
    # the five dq → linear patterns run down 2,700 points of graph: the first one whole, none cut through
    assert inside[0] == "qv_pattern_p0" and not cut, (inside, cut)
    scale = driver.execute_script(f"return document.querySelector('{GRAPH}').qv.scale()")
    assert 0.7 <= scale <= 1.0, scale  # 10-point labels at 9 px or more
    driver.save_screenshot(str(ARTIFACTS / "capture_fitted.png"))


def test_find_a_node_lists_every_match_and_reveals_the_choice_in_the_collapsed_graph(driver, capture_ids):
    go_to_stage(driver, "capture", "torchao")
    expected = [i for i in capture_ids if "dequantize_affine_" in i]
    assert len(expected) == 9
    assert options_for(driver, "dequantize_affine_") == expected  # every one, in graph order
    close_list(driver)
    # collapse the graph by module: the node to find is inside block.fc2, drawn as the box of 'block'
    wait_for(driver, lambda d: _clicked(next((e for e in d.find_elements("css selector", "[data-testid=stExpander] "
                                              "summary") if e.text.split("\n")[-1].strip() == "View"), None)))
    choose(driver, "Collapse by module", "1")
    wait_for(driver, lambda d: d.find_elements("css selector", f'{GRAPH} g.node[id="qv_module/block"]'), 120)
    assert not driver.find_elements("css selector", f'{GRAPH} g.node[id="qv_dequantize_affine_7"]')
    pick(driver, "dequantize_affine_7")
    wait_for(driver, lambda d: shown_in_pane(d, "dequantize_affine_7"), 120)
    assert driver.find_elements("css selector", f'{GRAPH} g[id="qv_open/block.fc2"]')  # its modules opened
    assert "✕ block.fc2" in page_text(driver)  # the breadcrumb can close them again
    wait_for(driver, lambda d: "came from" in page_text(d) and "Quantization parameters" in page_text(d), 60)
    assert not cut_cells(driver), cut_cells(driver)
    driver.save_screenshot(str(ARTIFACTS / "capture_found.png"))
    choose(driver, "Collapse by module", "auto")


def test_emit_opens_fitted_to_its_delegates_and_reveals_an_op_inside_one(driver):
    go_to_stage(driver, "emit", "torchao")
    inside, cut = wait_for(driver, lambda d: (r := clusters_in_pane(d, "qv_delegate_"))[0] and r, 60)
    assert len(inside) >= 2 and "qv_delegate_executorch_call_delegate" in inside and not cut, (inside, cut)
    assert 0.7 <= driver.execute_script(f"return document.querySelector('{GRAPH}').qv.scale()") <= 1.0
    inner = "executorch_call_delegate_4/torchao_dequantize_affine_default_5"
    pick(driver, inner)
    wait_for(driver, lambda d: shown_in_pane(d, inner), 120)  # the delegate's ops drawn, this one ringed
    wait_for(driver, lambda d: "Inspector" in page_text(d) and "torchao.dequantize_affine" in page_text(d), 60)
    assert not cut_cells(driver), cut_cells(driver)
    driver.save_screenshot(str(ARTIFACTS / "emit_found.png"))
