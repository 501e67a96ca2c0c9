"""The app in a real browser: Debian's Chromium driven by Selenium through chromedriver.

Starts `streamlit run app.py` on a free loopback port, steps through the stages with the rail (saving a
screenshot of each page under tests/artifacts/), and on the fuse stage clicks a dequantize node in the
graph and reads its scale and zero point back from the inspector.
"""
from __future__ import annotations

import re
import time

import pytest

from quantviz.flows import FLOWS
STAGES = FLOWS["fx"].names  # the default flow's stages
from quantviz_devtools.browser import ARTIFACTS, chrome_driver, click_until, go_to_stage, page_text, running_app, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def app_url():
    with running_app({"QUANTVIZ_DEFAULT_MODEL": "sample:digits_cnn"}) as url:
        yield url


@pytest.fixture(scope="module")
def driver():
    d = chrome_driver(1600, 1400)
    yield d
    d.quit()


def test_step_to_fuse_click_a_dequantize_node_and_read_its_qparams(driver, app_url):  # tools checked first
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.get(app_url)
    wait_for(driver, lambda d: d.find_elements("css selector", "[data-testid=qv-graph] svg"))
    assert "1. trace" in page_text(driver) and "digits_cnn" in page_text(driver)
    for i, stage in enumerate(STAGES, 1):
        go_to_stage(driver, stage)
        time.sleep(1.0)
        driver.save_screenshot(str(ARTIFACTS / f"{i:02d}_{stage}.png"))
    go_to_stage(driver, "fuse")
    dequantize = "[data-testid=qv-graph] g.node.qv-dequantize"
    node_id, label = wait_for(driver, lambda d: next(((g.get_attribute("id").removeprefix("qv_"), g.text)
                                                      for g in d.find_elements("css selector", dequantize)), None))
    m = re.search(r"s=([0-9.e+-]+) zp=(-?\d+)", label)  # e.g. "quantized_..._default\nuint8 s=0.01234 zp=0"
    assert m, label
    click_until(driver, lambda d: d.find_element("css selector", f"g.node[id='qv_{node_id}']"),
                lambda d: "Quantization parameters" in page_text(d) and node_id in page_text(d), svg=True)
    text = page_text(driver)
    scale = re.search(r"^scale\s+([0-9.e+-]+)$", text, re.M)
    zero_point = re.search(r"^zero point\s+(-?\d+)$", text, re.M)
    assert scale and zero_point, text[-1500:]
    assert f"{float(scale.group(1)):.4g}" == m.group(1) and zero_point.group(1) == m.group(2)
    driver.save_screenshot(str(ARTIFACTS / "fuse_inspector.png"))
