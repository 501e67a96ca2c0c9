"""An export_llm configuration chosen in a real browser: the sidebar's "export_llm configuration" source, the YAML
ExecuTorch ships for XNNPACK picked from the list the package gives, the overrides on screen already filled with
the tiny model's (so it runs here with no download), the source_transform page's API calls naming the YAML and
those overrides, and the export page with its graph its KV cache (2 layers: 4 mutable buffers) and custom SDPA op. Screenshot
under tests/artifacts/."""
from __future__ import annotations

import time

import pytest

from quantviz.llm_config import TINY_PARAMS, tiny_overrides
from quantviz_devtools.browser import (ARTIFACTS, _clicked, chrome_driver, choose, choose_source, go_to_stage,
                                       page_text, running_app, selectbox, wait_for)

pytestmark = pytest.mark.e2e
YAML = "llama/llama_xnnpack.yaml"
OVERRIDES_LABEL = "Overrides (key=value, one a line)"


@pytest.mark.slow  # 36 s in CI's run of 2026-12-07: moved out of CI's 30 minutes; `make test-all` runs it
def test_a_shipped_export_llm_yaml_reaches_the_export_page():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with running_app({"QUANTVIZ_DEFAULT_MODEL": "sample:conv_add"}) as url:  # the smallest sample opens first
        driver = chrome_driver(1600, 1200)
        try:
            driver.get(url)
            started = time.monotonic()
            choose_source(driver, "export_llm configuration")
            wait_for(driver, lambda d: selectbox(d, "LLM configuration"))
            choose(driver, "LLM configuration", YAML)
            area = wait_for(driver, lambda d: d.find_elements(
                "css selector", f"textarea[aria-label='{OVERRIDES_LABEL}']"))[0]
            assert area.get_attribute("value") == "\n".join(tiny_overrides())  # the tiny model's, on screen
            assert "+base.params=" in area.get_attribute("value")
            go_to_stage(driver, "source_transform", "export_llm", graph=False)
            wait_for(driver, lambda d: _clicked(next((e for e in d.find_elements("css selector", "summary")
                                                      if "API calls this stage made" in e.text), None)))
            calls = ("llama_xnnpack.yaml", "+base.params=", "quantization.group_size=32",
                     "_prepare_for_llama_export(llm_config)")
            wait_for(driver, lambda d: all(c in page_text(d) for c in calls), 120)
            text = page_text(driver)
            # the header: the model once, the shipped YAML by its label (not its site-packages path), no repeat
            assert f"export_llm {YAML}" in text and text.count("+base.params=export_llm_tiny_params.json") == 1
            assert "group_size=32" in text and "max_seq_length=32" in text  # the stage's notes: the merged config
            go_to_stage(driver, "export", "export_llm")
            kv = f"mutable buffers (KV cache) written by the graph: {2 * TINY_PARAMS['n_layers']}"
            wait_for(driver, lambda d: kv in page_text(d) and "llama.custom_sdpa" in page_text(d), 120)
            took = time.monotonic() - started
            nodes = page_text(driver).split("\nnodes\n", 1)[1].split("\n", 1)[0]
            assert int(nodes) > 100  # the exported decoder's graph, counted on the page
            print(f"source chosen -> export page with its graph: {took:.1f} s ({nodes} nodes)")
            time.sleep(1.0)
            driver.save_screenshot(str(ARTIFACTS / "export_llm_export.png"))
        finally:
            driver.quit()
