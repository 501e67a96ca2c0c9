"""Benchmark: how soon a big model's first graph is on screen while its later stages still run.

    .venv/bin/python bench/first_graph_streaming.py             # prints the README's Markdown row
    .venv/bin/python bench/first_graph_streaming.py --rounds 5

Each round starts a fresh `streamlit run app.py` (nothing cached) and a fresh headless Chromium, chooses
`tests/fixtures/slow_models.py:make_deep_mlp` (256 residual blocks, 1,026 nodes after trace) through the
sidebar's "Python file" source, and times from the path entered to the trace stage's graph on screen. The round
counts only when the rail still shows the last stage waiting (the graph streamed in; it did not wait for the
flow). The machine's 1-minute load average at each round is printed beside it: the figure moves with it.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRAPH = "[data-testid=qv-graph] svg"


# Polled in the page (textContent, no layout; every 10 ms): ms from the call until the trace graph of deep_mlp
# is in the DOM and a frame was painted.
_FIRST_GRAPH = """
const finish = arguments[0], t0 = performance.now();
(function poll() {
  const text = document.body.textContent;
  if (text.includes('1. trace') && text.includes('1026 nodes') && document.querySelector('[data-testid=qv-graph] svg g.node'))
    requestAnimationFrame(() => setTimeout(() => finish(performance.now() - t0), 0));
  else setTimeout(poll, 10);
})();
"""


def one_round(idle: bool) -> tuple[float, float]:
    """(seconds from the path entered to the trace graph on screen, load average then). ``idle``: choose the
    model once the app's default sample finished its stages; else at once (its stages still running: loading
    waits for the running stage to end, as fx tracing patches nn.Module process-wide)."""
    from quantviz_devtools.browser import choose_python_file, chrome_driver, page_text, running_app, wait_for

    with running_app({"QUANTVIZ_DEFAULT_MODEL": "sample:digits_cnn"}) as url:
        d = chrome_driver(1600, 1400)
        try:
            d.get(url)
            wait_for(d, lambda d: d.find_elements("css selector", "[data-testid=stRadio] label"), 120)
            if idle:
                wait_for(d, lambda d: "10 run ✓" in page_text(d), 600)
            t0 = choose_python_file(d, "tests/fixtures/slow_models.py", "make_deep_mlp")
            d.set_script_timeout(300)
            polled = time.monotonic()
            seconds = (polled - t0) + d.execute_async_script(_FIRST_GRAPH) / 1000
            assert "10 run ○" in page_text(d), "the run stage was not waiting: the graph did not stream in"
            return seconds, os.getloadavg()[0]
        finally:
            d.quit()


def server_share(rounds: int) -> str:
    """The server's own work for that first graph, in this process: medians of load, trace, snapshot, layout."""
    from quantviz import Pipeline, PipelineConfig, load_model
    from quantviz.render import ViewSpec, dot_to_svg, plan_view, to_dot

    times: dict[str, list[float]] = {"load": [], "trace": [], "graph snapshot": [], "overview plan + DOT + `dot`": []}
    for _ in range(rounds):
        t = time.perf_counter()
        pipe = Pipeline(load_model("tests/fixtures/slow_models.py:make_deep_mlp"), PipelineConfig(until="trace"))
        times["load"].append(time.perf_counter() - t)
        t = time.perf_counter()
        pipe.run()
        times["trace"].append(time.perf_counter() - t)
        t = time.perf_counter()
        graph = pipe.results["trace"].graph
        times["graph snapshot"].append(time.perf_counter() - t)
        t = time.perf_counter()
        dot_to_svg(to_dot(graph, ViewSpec(), plan_view(graph, ViewSpec())))
        times["overview plan + DOT + `dot`"].append(time.perf_counter() - t)
    return f"server share (in-process, median of {rounds}): " + ", ".join(
        f"{k} {statistics.median(v):.2f} s" for k, v in times.items())


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="first graph on screen while later stages run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--case", choices=("both", "idle", "busy"), default="both",
                        help="idle: the default sample finished first; busy: chosen while its stages run")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))  # quantviz, quantviz_devtools from this checkout when not installed
    rows = []
    cases = ((True, "app idle"), (False, "right after opening the app (digits_cnn's stages running)"))
    for idle, when in [c for c in cases if args.case in ("both", "idle" if c[0] else "busy")]:
        rounds = []
        for k in range(args.rounds):
            rounds.append(one_round(idle))
            print(f"{when}, round {k + 1}: {rounds[-1][0]:.2f} s (load average {rounds[-1][1]:.1f})",
                  file=sys.stderr)
        seconds, loads = [s for s, _ in rounds], [a for _, a in rounds]
        rows.append(f"| choose the model → trace graph on screen; {when} | "
                    f"deep_mlp (1,026 nodes) | {len(seconds)} | {statistics.median(seconds):.2f} s | "
                    f"{min(seconds):.2f}–{max(seconds):.2f} s | {min(loads):.1f}–{max(loads):.1f} |")
    print(server_share(args.rounds))
    print("| measure | model | rounds | median | min–max | load average |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
