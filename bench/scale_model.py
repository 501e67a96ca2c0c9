"""Benchmark: a synthetic model of about 5,000 nodes after convert, through every stage, and the first graph view.

    .venv/bin/python bench/scale_model.py                 # 850 conv+relu blocks, fx flow
    .venv/bin/python bench/scale_model.py --blocks 400 --flow pt2e

The model is a chain of tiny conv(4 -> 4, 3x3) + ReLU blocks with a residual add every 4 blocks, on 1x4x8x8
inputs, so the arithmetic is negligible and the time is the flow's (and quantviz's) handling of graph size.
"First view" is what the app does on the convert page: the graph snapshot (lazy, so paid here) plus the
default (auto-collapsed) view's DOT, and graphviz's layout of it.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

import torch  # noqa: E402
from torch import nn  # noqa: E402


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x))


class Chain(nn.Module):
    def __init__(self, blocks: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block() for _ in range(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i % 4 == 3:
                x = x + skip
                skip = x
        return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=850)
    parser.add_argument("--flow", default="fx", choices=["fx", "pt2e"])
    args = parser.parse_args()

    from quantviz import ModelSpec, Pipeline, PipelineConfig
    from quantviz.pipeline import StageEvent
    from quantviz.render import ViewSpec, dot_available, dot_to_svg, plan_view, to_dot

    torch.manual_seed(0)
    model = Chain(args.blocks).eval()
    for m in model.modules():  # keep activations in range through a long chain
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.15)
    batches = [(torch.randn(1, 4, 8, 8),) for _ in range(4)]
    spec = ModelSpec(name=f"chain{args.blocks}", model=model, example_inputs=batches[0],
                     calibration_batches=batches, eval_batches=[(b, None) for b in batches[:2]])
    times: dict[str, float] = {}
    started: dict[str, float] = {}

    def on_event(e: StageEvent) -> None:
        if e.kind == "start":
            started[e.stage] = time.perf_counter()
        elif e.kind == "end":
            times[e.stage] = time.perf_counter() - started[e.stage]
            ok = "ok" if e.result and e.result.ok else f"FAILED: {e.result.error.message if e.result else ''}"
            print(f"  {e.stage:<10} {times[e.stage]:7.2f} s  {ok}", flush=True)

    print(f"{spec.name}, flow {args.flow}")
    pipe = Pipeline(spec, PipelineConfig(flow=args.flow), on_event=on_event).run()
    t = time.perf_counter()
    graph = pipe.results["convert"].graph
    snap = time.perf_counter() - t
    t = time.perf_counter()
    plan = plan_view(graph, ViewSpec())
    dot = to_dot(graph, ViewSpec(), plan)
    view = time.perf_counter() - t
    layout = None
    if dot_available():
        t = time.perf_counter()
        dot_to_svg(dot)
        layout = time.perf_counter() - t
    print()
    print("| stage | seconds |")
    print("|---|---|")
    for stage, s in times.items():
        print(f"| {stage} | {s:.2f} |")
    print(f"| **total** | {sum(times.values()):.2f} |")
    print(f"\nconvert graph: {len(graph.nodes)} nodes; first view: snapshot {snap:.2f} s, default view "
          f"{view:.2f} s ({plan.visible_count} boxes)" + (f", layout {layout:.2f} s" if layout is not None else ""))


if __name__ == "__main__":
    main()
