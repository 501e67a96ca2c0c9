"""The torchao flow in a real browser, on the Llama-style decoder: the rail shows the stages the flow does not have,
the quantize page lists every weight with its groupwise block and scale shape, and a weight's dequantize on the
capture page shows its groupwise qparams in the inspector (screenshots under tests/artifacts/)."""
from __future__ import annotations

import time

import pytest

from quantviz import Pipeline, PipelineConfig, load_model
from quantviz_devtools.browser import (ARTIFACTS, _clicked, chrome_driver, choose, go_to_stage, page_text, running_app,
                                       selectbox, wait_for)

pytestmark = pytest.mark.e2e
MODEL = "sample:zoo_llama"


@pytest.fixture(scope="module")
def weight_dequantize() -> str:
    """The name of the capture graph's first groupwise weight dequantize (the app exports the same program)."""
    pipe = Pipeline(load_model(MODEL), PipelineConfig(flow="torchao", until="capture")).run()
    return next(n.id for n in pipe.results["capture"].graph.nodes
                if n.kind == "dequantize" and n.qparams is not None and n.qparams.scheme == "per_group")


def test_the_decoders_quantize_and_capture_stages(weight_dequantize):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with running_app({"QUANTVIZ_DEFAULT_MODEL": MODEL}) as url:
        driver = chrome_driver(1600, 1300)
        try:
            driver.get(url)
            wait_for(driver, lambda d: "1. trace" in page_text(d))
            choose(driver, "Flow", "torchao")
            wait_for(driver, lambda d: "Scheme" in page_text(d) and "2 quantize" in page_text(d))
            go_to_stage(driver, "calibrate", "torchao", graph=False)
            # the stage's title can be on screen a rerun before its body: wait for the body, then check it
            absent = ("Not part of the torchao flow", "nothing to calibrate")
            wait_for(driver, lambda d: all(a in page_text(d) for a in absent))
            assert "Not part of the torchao flow" in page_text(driver) and "nothing to calibrate" in page_text(driver)
            go_to_stage(driver, "quantize", "torchao", graph=False)
            # the notes sum the table up (the table itself is a canvas grid, its CSV a download)
            # the notes are written one after another: wait for the last one, not the first
            notes = ("Linear int4 per group 32 (IntxUnpackedToInt8Tensor)", "15 weight(s) quantized",
                     "int8 per token", "no calibration")
            wait_for(driver, lambda d: all(note in page_text(d) for note in notes))
            assert driver.find_elements("css selector", "[data-testid=stDataFrame]")  # one row per weight
            time.sleep(1.0)
            driver.save_screenshot(str(ARTIFACTS / "torchao_quantize.png"))
            go_to_stage(driver, "capture", "torchao")
            box = wait_for(driver, lambda d: selectbox(d, "Find a node"))
            field = box.find_element("css selector", "input")
            field.click()
            field.send_keys(weight_dequantize)
            # click the option that is this node (Enter took whatever the filter had highlighted so far)
            wait_for(driver, lambda d: _clicked(next((o for o in d.find_elements("css selector", "[role=option]")
                                                      if o.text.strip() == weight_dequantize), None)), 30)
            expected = ("Quantization parameters", "per_group", "one LSB per group", "1 × 32")
            wait_for(driver, lambda d: all(e in page_text(d) for e in expected))
            time.sleep(1.0)
            driver.save_screenshot(str(ARTIFACTS / "torchao_capture.png"))
        finally:
            driver.quit()
