"""Benchmark: DOT generation and `dot` layout time, full detail vs the default (collapsed) view.

    .venv/bin/python bench/render_graphs.py            # prints a Markdown table
    .venv/bin/python bench/render_graphs.py --layout-timeout 60

Synthetic graphs shaped like quantized CNNs (100 .. 10,000 nodes) plus the sample models' convert stage.
Layout runs the `dot` binary with a time limit; a graph it cannot lay out in time is reported as such.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantviz.graph.synthetic import synthetic_graph  # noqa: E402
from quantviz.render import ViewSpec, dot_available, plan_view, to_dot  # noqa: E402

FULL = ViewSpec(max_nodes=10**9)  # never collapse


def best_of(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def layout_seconds(dot_text: str, timeout: float) -> str:
    if not dot_available():
        return "n/a (no dot)"
    t = time.perf_counter()
    try:
        subprocess.run(["dot", "-Tsvg", "-o", "/dev/null"], input=dot_text.encode(), timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return f"> {timeout:.0f}"
    return f"{time.perf_counter() - t:.2f}"


def sample_graphs() -> list[tuple[str, object]]:
    from quantviz import Pipeline, PipelineConfig, load_model

    out = []
    for name in ("digits_cnn", "mobilenet_v2", "tiny_transformer"):
        pipe = Pipeline(load_model(f"sample:{name}"), PipelineConfig(flow="pt2e", until="convert")).run()
        out.append((f"sample:{name} (convert)", pipe.results["convert"].graph))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layout-timeout", type=float, default=120.0)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 1_000, 3_000, 10_000])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    graphs = [(f"synthetic {n:,}", synthetic_graph(n)) for n in args.sizes] + sample_graphs()
    print("| graph | nodes | full: DOT s | full: layout s | default view: boxes | default: DOT s | default: layout s |")
    print("|---|---|---|---|---|---|---|")
    for name, g in graphs:
        full_s, full_dot = best_of(lambda: to_dot(g, FULL))
        default_s, default_dot = best_of(lambda: to_dot(g))
        boxes = plan_view(g).visible_count
        print(f"| {name} | {len(g.nodes):,} | {full_s:.3f} | {layout_seconds(full_dot, args.layout_timeout)} | "
              f"{boxes} | {default_s:.3f} | {layout_seconds(default_dot, args.layout_timeout)} |", flush=True)


if __name__ == "__main__":
    main()
