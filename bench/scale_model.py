"""Benchmark: a synthetic model of about 5,000 nodes after convert, through every stage, and the first graph view.

    .venv/bin/python bench/scale_model.py                 # 850 conv+relu blocks, fx flow
    .venv/bin/python bench/scale_model.py --blocks 400 --flow pt2e
    .venv/bin/python bench/scale_model.py --blocks 400 --split   # + where edge's and emit's time goes

The model is a chain of tiny conv(4 -> 4, 3x3) + ReLU blocks with a residual add every 4 blocks, on 1x4x8x8
inputs, so the arithmetic is negligible and the time is the flow's (and quantviz's) handling of graph size.
"First view" is what the app does on the convert page: the graph snapshot (lazy, so paid here) plus the
default (auto-collapsed) view's DOT, and graphviz's layout of it.

``--split`` times, inside the same run, the calls the edge and emit stages make: quantviz's weight folding
(``fold_weight_quantize``, ExecuTorch's ``constant_prop_pass``), ``scalar_qparams``, ExecuTorch's ``to_edge``, and
``to_executorch``; the rest of each stage (DuplicateDequantNodePass, emit's copy of the program, bookkeeping) is
its own row. Prints the README's Markdown table rows.
"""
from __future__ import annotations

import argparse
import contextlib
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


@contextlib.contextmanager
def split_timer(seconds: dict[str, float], current: list[str]):
    """Add to ``seconds`` the time spent in the edge and emit stages' big calls while the block runs, under
    "stage: call" (``current[0]`` is the stage running)."""
    import quantviz.lowering
    import quantviz.passes.fold_weight_quantize
    import quantviz.passes.scalar_qparams
    from executorch.exir.program._program import EdgeProgramManager

    targets = [(quantviz.passes.fold_weight_quantize, "fold_weight_quantize",
                "fold_weight_quantize (constant_prop_pass)"),
               (quantviz.passes.scalar_qparams, "scalar_qparams", "scalar_qparams"),
               (quantviz.lowering, "edge_program", "to_edge"),
               (EdgeProgramManager, "to_executorch", "to_executorch")]

    def timed(fn, label):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                key = f"{current[0]}: {label}"
                seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - t
        return wrapper

    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]
    for (owner, name, label), (_, _, fn) in zip(targets, originals):
        setattr(owner, name, timed(fn, label))
    try:
        yield
    finally:
        for owner, name, fn in originals:
            setattr(owner, name, fn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=850)
    parser.add_argument("--flow", default="fx", choices=["fx", "pt2e"])
    parser.add_argument("--split", action="store_true",
                        help="also time the big calls inside edge and emit (to_edge, to_executorch, weight folding)")
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
    current = [""]

    def on_event(e: StageEvent) -> None:
        if e.kind == "start":
            current[0] = e.stage
            started[e.stage] = time.perf_counter()
        elif e.kind == "end":
            times[e.stage] = time.perf_counter() - started[e.stage]
            ok = "ok" if e.result and e.result.ok else f"FAILED: {e.result.error.message if e.result else ''}"
            print(f"  {e.stage:<10} {times[e.stage]:7.2f} s  {ok}", flush=True)

    print(f"{spec.name}, flow {args.flow}")
    split: dict[str, float] = {}
    with split_timer(split, current) if args.split else contextlib.nullcontext():
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
    if args.split:
        print(f"\n{args.blocks} blocks, flow {args.flow}: the big calls inside the stages\n")
        print("| stage: call | seconds |")
        print("|---|---|")
        for stage in dict.fromkeys(k.split(":")[0] for k in split):
            parts = {k: v for k, v in split.items() if k.startswith(f"{stage}:")}
            for label, s in parts.items():
                print(f"| {label} | {s:.2f} |")
            if stage in times:
                print(f"| {stage}: rest of the stage | {times[stage] - sum(parts.values()):.2f} |")
    print(f"\nconvert graph: {len(graph.nodes)} nodes; first view: snapshot {snap:.2f} s, default view "
          f"{view:.2f} s ({plan.visible_count} boxes)" + (f", layout {layout:.2f} s" if layout is not None else ""))


if __name__ == "__main__":
    main()
