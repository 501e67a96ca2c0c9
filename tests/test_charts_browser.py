"""The numerics charts in a real browser, offline (no name resolves): the app's run page after "Compare node by
node" (Streamlit's own Vega draws the specs) and the charts section of `quantviz report`'s HTML (inline SVG).
Screenshots: tests/artifacts/charts_app.png and tests/artifacts/charts_report.png.

Like the other browser tests: chromium, chromedriver and graphviz missing skip locally and fail under CI=true
(`require_tool`)."""
from __future__ import annotations

import re
import time

import pytest

from quantviz.flows import FLOWS
STAGES = FLOWS["fx"].names  # the default flow's stages
from quantviz.numerics.compare import compare
from quantviz.report import build_report
from quantviz_devtools.browser import ARTIFACTS, chrome_driver, choose, click_until, dump_dom, find_button, page_text, running_app, \
    wait_for
from quantviz_devtools.tools import require_tool

pytestmark = pytest.mark.e2e
CHARTS = ["sqnr_by_node", "lsb_histograms", "sensitivity_bars", "accuracy_bars"]


@pytest.fixture(scope="module")
def charts_driver():
    d = chrome_driver(1500, 1900, offline=True)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def charts_app():
    """`streamlit run app.py` on digits_cnn (started here so this file runs on its own)."""
    with running_app({"QUANTVIZ_DEFAULT_MODEL": "sample:digits_cnn"}) as url:
        yield url


def open_run_page(driver) -> bool:
    """One try (for `wait_for`): click the rail's run stage unless its page is up; True once the page offers
    "Compare node by node" (the run finished and its page was drawn)."""
    run = f"{len(STAGES)}. run"
    if run not in page_text(driver):
        button = find_button(driver, f"{len(STAGES)} run", prefix=True)
        if button is not None:
            button.click()
        time.sleep(2)
    return run in page_text(driver) and find_button(driver, "Compare node by node") is not None


def test_app_run_page_shows_the_charts(charts_driver, charts_app):
    from selenium.webdriver.common.keys import Keys

    require_tool("dot")
    d = charts_driver
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    d.get(charts_app)
    wait_for(d, lambda d: d.find_elements("css selector", "[data-testid=qv-graph] svg"))
    choose(d, "Fusion", "quantviz")  # the project's kernels: the LSB histograms have instances to show
    time.sleep(2)
    wait_for(d, open_run_page, timeout=300)  # the flow runs again with the new fusion first

    def two_layers(d) -> bool:  # typed again if a rerun replaced the box before it took the value
        box = d.find_element("css selector", "input[aria-label^='Sensitivity']")
        if box.get_attribute("value") != "2":
            box.send_keys(Keys.CONTROL, "a")
            box.send_keys("2", Keys.ENTER)
            time.sleep(2)
        return d.find_element("css selector", "input[aria-label^='Sensitivity']").get_attribute("value") == "2"

    wait_for(d, two_layers)
    time.sleep(2)

    def four_charts(d):
        drawn = [c for c in d.find_elements("css selector", "[data-testid=stVegaLiteChart]")
                 if c.find_elements("css selector", "canvas, svg")]
        return drawn if len(drawn) == 4 else None

    # a click a rerun swallowed gets another one (a second click reuses the cached numerics)
    click_until(d, lambda d: find_button(d, "Compare node by node"), four_charts, tries=3, each=200)
    charts = wait_for(d, four_charts)
    text = page_text(d)
    for title in ("SQNR per node along execution order", "LSB error per kernel op", "Sensitivity: SQNR gain",
                  "Accuracy per level"):
        assert title in text or d.find_elements("css selector", f"[aria-label*='{title[:20]}']"), title
    wait_for(d, lambda d: d.execute_script(  # the button just above the charts
        "arguments[0].scrollIntoView({block: 'start'}); return true;", find_button(d, "Compare node by node")))
    time.sleep(1.5)  # Vega's enter transitions
    sizes = [c.size for c in charts]
    assert all(s["width"] > 300 and s["height"] > 150 for s in sizes), sizes
    d.save_screenshot(str(ARTIFACTS / "charts_app.png"))


def test_report_charts_render_offline(flow, charts_driver, tmp_path):
    require_tool("dot")
    pipe = flow("sample:digits_cnn", fusion="quantviz")
    out = tmp_path / "report.html"
    out.write_text(build_report(pipe, compare(pipe, sensitivity_layers=3)))
    text = out.read_text()
    assert not re.search(r"""(src|href)=["']?https?:""", text)
    dom = dump_dom(out.as_uri())  # offline chromium
    section = re.search(r'<section id="charts" class="charts">(.*?)</section>', dom, re.S).group(1)
    assert re.findall(r'<figure class="chart" id="chart-(\w+)">', section) == CHARTS
    assert section.count('<g class="qv-small-multiple"') == 4  # linear, conv2d, hardtanh, max_pool2d
    assert len(re.findall(r'<g class="qv-bar" data-label="(fc|conv1|conv2)"', section)) == 3
    d = charts_driver
    d.get(out.as_uri())
    figure = d.find_element("css selector", "section#charts")
    d.execute_script("arguments[0].scrollIntoView({block: 'start'})", figure)
    assert figure.size["height"] > 1000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    figure.screenshot(str(ARTIFACTS / "charts_report.png"))


def test_first_divergence_mark_sits_on_its_node(charts_driver, tmp_path):
    """digits_cnn has no divergence (its kernels stay within 1 LSB): the mark is shown on the hand-built blame
    table of test_charts, drawn as the report draws it; the rule goes through relu2's points."""
    from test_charts import blame_rows

    from quantviz.render.charts import charts_html, sqnr_by_node
    from quantviz.report import CSS

    page = tmp_path / "divergence.html"
    page.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{CSS}</style></head><body><main>"
                    f"{charts_html([sqnr_by_node(blame_rows())])}</main></body></html>")
    d = charts_driver
    d.get(page.as_uri())
    rule = d.find_element("css selector", "g.qv-divergence line")
    relu2 = [c for c in d.find_elements("css selector", "g.qv-series circle")
             if c.get_attribute("innerHTML").startswith("<title>relu2 ")]
    assert len(relu2) == 3 and {c.get_attribute("cx") for c in relu2} == {rule.get_attribute("x1")}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    d.find_element("css selector", "figure.chart").screenshot(str(ARTIFACTS / "charts_divergence.png"))
