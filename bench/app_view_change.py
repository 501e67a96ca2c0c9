"""Benchmark: server time of an app rerun after a view control changes (the pipeline must not re-run).

    .venv/bin/python bench/app_view_change.py

Runs app.py through streamlit.testing.v1.AppTest on sample:digits_cnn (and mobilenet_v2 with XNNPACK), lets
the pipeline run once, then toggles view controls and times each rerun: layout of the new view included.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

from streamlit.testing.v1 import AppTest  # noqa: E402

CHANGES = [("v_quant", True), ("v_quant", False), ("v_params", False), ("v_params", True), ("v_patterns", False),
           ("v_patterns", True)]


def measure(model: str, stage: str, partitioner: str = "none") -> tuple[float, float, int]:
    os.environ["QUANTVIZ_DEFAULT_MODEL"] = f"sample:{model}"
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=900)
    at.run()
    if partitioner != "none":
        at.sidebar.selectbox(key="partitioner").select(partitioner)
        at.sidebar.radio(key="flow").set_value("pt2e")
        at.run()
    at.session_state.stage = stage
    at.run()
    from ui.runner import pipeline_store

    pipes = len(pipeline_store())
    times = []
    for key, value in CHANGES * 3:
        at.toggle(key=key).set_value(value)
        t = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t)
        assert not at.exception, at.exception
    assert len(pipeline_store()) == pipes, "a view change must not run the pipeline"
    return statistics.median(times), max(times), len(times)


def main() -> None:
    print("| model | stage | reruns | median s | max s |")
    print("|---|---|---|---|---|")
    for model, stage, part in (("digits_cnn", "convert", "none"), ("digits_cnn", "fuse", "none"),
                               ("mobilenet_v2", "convert", "xnnpack"), ("mobilenet_v2", "delegate", "xnnpack")):
        med, worst, n = measure(model, stage, part)
        print(f"| {model}{' (pt2e, xnnpack)' if part != 'none' else ''} | {stage} | {n} | {med:.3f} | {worst:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
