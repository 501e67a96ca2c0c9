"""Benchmark: server time of an app rerun after a view control changes (the pipeline must not re-run).

    .venv/bin/python bench/app_view_change.py
    .venv/bin/python bench/app_view_change.py --rounds 5

Runs app.py through streamlit.testing.v1.AppTest on sample:digits_cnn (and mobilenet_v2 with XNNPACK), lets the
pipeline run once, then toggles view controls and times each rerun. The layout of a view (graphviz's `dot`) is
cached by ``st.cache_data`` (ui/stage_page.py ``layout_svg``), and cycling through the same few states would hit
that cache on almost every rerun, so the two cases are measured apart:

- uncached: the layout cache is cleared before each rerun, so the new view is laid out by `dot` (what the first
  visit of a view costs);
- cached: every state was visited once before, so the rerun reuses the layout (what returning to a view costs).

Each timed rerun is checked: uncached ones ran `dot` at least once, cached ones never; and no view change ran the
pipeline. Prints the README's Markdown table rows.
"""
from __future__ import annotations

import argparse
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

import ui.stage_page  # noqa: E402  the module the app uses (AppTest runs app.py in this process)
from quantviz.render import dot_available  # noqa: E402

CHANGES = [("v_quant", True), ("v_quant", False), ("v_params", False), ("v_params", True), ("v_patterns", False),
           ("v_patterns", True)]
LAYOUTS = [0]  # calls of graphviz's `dot` made by the app's layout function


def _counting(fn):
    def dot_to_svg(*args, **kwargs):
        LAYOUTS[0] += 1
        return fn(*args, **kwargs)
    return dot_to_svg


ui.stage_page.dot_to_svg = _counting(ui.stage_page.dot_to_svg)


def timed_rerun(at: AppTest, key: str, value: bool) -> tuple[float, int]:
    at.toggle(key=key).set_value(value)
    before = LAYOUTS[0]
    t = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - t
    assert not at.exception, at.exception
    return seconds, LAYOUTS[0] - before


def measure(model: str, stage: str, partitioner: str, rounds: int) -> dict[str, list[float]]:
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
    times: dict[str, list[float]] = {"uncached": [], "cached": []}
    for key, value in CHANGES * rounds:
        ui.stage_page.layout_svg.clear()
        seconds, layouts = timed_rerun(at, key, value)
        assert layouts >= 1, f"{key}={value}: the layout cache was cleared but `dot` did not run"
        times["uncached"].append(seconds)
    for key, value in CHANGES:  # visit every state once: each layout is cached afterwards
        timed_rerun(at, key, value)
    for key, value in CHANGES * rounds:
        seconds, layouts = timed_rerun(at, key, value)
        assert layouts == 0, f"{key}={value}: `dot` ran {layouts} time(s) for a state visited before"
        times["cached"].append(seconds)
    assert len(pipeline_store()) == pipes, "a view change must not run the pipeline"
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="passes over the 6 view changes, per layout case")
    args = parser.parse_args()
    if not dot_available():
        sys.exit("graphviz's `dot` is not installed: without it no view is laid out (scripts/system_deps.sh)")
    print("| model | stage | layout | reruns | median s | min–max s |")
    print("|---|---|---|---|---|---|")
    for model, stage, part in (("digits_cnn", "convert", "none"), ("digits_cnn", "fuse", "none"),
                               ("mobilenet_v2", "convert", "xnnpack"), ("mobilenet_v2", "delegate", "xnnpack")):
        times = measure(model, stage, part, args.rounds)
        name = f"{model}{' (pt2e, xnnpack)' if part != 'none' else ''}"
        for case, values in times.items():
            print(f"| {name} | {stage} | {case} | {len(values)} | {statistics.median(values):.3f} | "
                  f"{min(values):.3f}–{max(values):.3f} |", flush=True)


if __name__ == "__main__":
    main()
