"""The app in a real browser: Debian's Chromium driven by Selenium through chromedriver.

Starts `streamlit run app.py` on a free loopback port, steps through the stages with the rail (saving a
screenshot of each page under tests/artifacts/), and on the fuse stage clicks a dequantize node in the
graph and reads its scale and zero point back from the inspector.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from browser import FLAGS, require_chromium
from conftest import require_module, require_tool
from quantviz.config import STAGES

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    port = free_port()
    env = dict(os.environ, QUANTVIZ_DEFAULT_MODEL="sample:digits_cnn")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
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


@pytest.fixture(scope="module")
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


def wait_for(driver, condition, timeout=300):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.5).until(condition)


def page_text(driver) -> str:
    return driver.find_element("tag name", "body").text


def go_to_stage(driver, number: int, stage: str) -> None:
    button = wait_for(driver, lambda d: next((b for b in d.find_elements("css selector", "button")
                                              if b.text.startswith(f"{number} {stage}")), None))
    button.click()
    wait_for(driver, lambda d: f"{number}. {stage}" in page_text(d))


def test_step_to_fuse_click_a_dequantize_node_and_read_its_qparams(driver, app_url):  # tools checked first
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.get(app_url)
    wait_for(driver, lambda d: d.find_elements("css selector", "[data-testid=qv-graph] svg"))
    assert "1. trace" in page_text(driver) and "digits_cnn" in page_text(driver)
    for i, stage in enumerate(STAGES, 1):
        go_to_stage(driver, i, stage)
        time.sleep(1.0)
        driver.save_screenshot(str(ARTIFACTS / f"{i:02d}_{stage}.png"))
    go_to_stage(driver, STAGES.index("fuse") + 1, "fuse")
    dq = wait_for(driver, lambda d: d.find_elements("css selector", "[data-testid=qv-graph] g.node.qv-dequantize"))
    target = dq[0]
    node_id = target.get_attribute("id").removeprefix("qv_")
    label = target.text  # e.g. "quantized_..._default\nuint8 s=0.01234 zp=0"
    m = re.search(r"s=([0-9.e+-]+) zp=(-?\d+)", label)
    assert m, label
    driver.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", target)
    wait_for(driver, lambda d: "Quantization parameters" in page_text(d) and node_id in page_text(d))
    text = page_text(driver)
    scale = re.search(r"^scale\s+([0-9.e+-]+)$", text, re.M)
    zero_point = re.search(r"^zero point\s+(-?\d+)$", text, re.M)
    assert scale and zero_point, text[-1500:]
    assert f"{float(scale.group(1)):.4g}" == m.group(1) and zero_point.group(1) == m.group(2)
    driver.save_screenshot(str(ARTIFACTS / "fuse_inspector.png"))
