"""Benchmark: the 16-layer decoder (sample:zoo_llama_deep, the depth of a 1B-parameter model at small width) through
quantviz's whole torchao flow against the bare recipe call that makes the same quantization, in the same run.

    .venv/bin/python bench/scale_decoder.py                 # 3 rounds, each a fresh process per side, A B A B ...
    .venv/bin/python bench/scale_decoder.py --rounds 5 --model sample:zoo_llama

A: ``quantviz``'s Pipeline, ``--flow torchao --scheme 8da4w --group-size 32`` through ``run`` (trace, quantize,
capture, edge, delegate, fuse, emit, run; graphs are not drawn: snapshots are lazy).
B: the bare calls a user writes: ``executorch.export.export(model, samples,
ExportRecipe.get_recipe(XNNPackRecipeType.TORCHAO_INT8_DYNAMIC_ACT_INT4_WEIGHT_PER_TENSOR, group_size=32))`` (its
PerGroup(32) recipe, despite the name), then the .pte in the runtime on the same evaluation batches.
Both are timed inside their process from model build to the runtime's outputs (imports excluded); the script prints
min / median / max of each and of the ratio A/B pair by pair, then how long the first graph takes to reach the screen
(snapshot, overview plan, DOT, graphviz layout of the capture stage) and the overview's boxes (one per decoder layer).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import warnings

warnings.filterwarnings("ignore")


def side_quantviz(model: str) -> dict:
    from quantviz import Pipeline, PipelineConfig, load_model

    t0 = time.perf_counter()
    pipe = Pipeline(load_model(model), PipelineConfig(flow="torchao", scheme="8da4w", group_size=32)).run()
    seconds = time.perf_counter() - t0
    assert pipe.ok, pipe.failed and pipe.failed.error
    out = {"seconds": seconds, "stages": {n: round(r.seconds, 2) for n, r in pipe.results.items()},
           "sqnr": pipe.numerics().get("float_vs_runtime_sqnr_db")}
    from scale_llm import first_graph  # bench/, this script's folder, is on sys.path

    out["first_graph"] = first_graph(pipe, "capture")
    return out


def side_recipe(model: str) -> dict:
    import copy

    from executorch.backends.xnnpack.recipes import XNNPackRecipeType
    from executorch.export import ExportRecipe, export
    from executorch.extension.pybindings.portable_lib import _load_for_executorch_from_buffer

    from quantviz import load_model
    from quantviz.data import evaluation_data
    from quantviz.config import PipelineConfig

    t0 = time.perf_counter()
    spec = load_model(model)
    recipe = ExportRecipe.get_recipe(XNNPackRecipeType.TORCHAO_INT8_DYNAMIC_ACT_INT4_WEIGHT_PER_TENSOR, group_size=32)
    session = export(copy.deepcopy(spec.model), spec.calibration_data(8), recipe)
    buffer = session.get_pte_buffer()
    module = _load_for_executorch_from_buffer(buffer)
    for batch in evaluation_data(spec, PipelineConfig()).batches:
        module.forward(tuple(batch))
    return {"seconds": time.perf_counter() - t0}


def spread(xs: list[float]) -> str:
    return f"{min(xs):.1f} / {statistics.median(xs):.1f} / {max(xs):.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sample:zoo_llama_deep")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--side", choices=("quantviz", "recipe"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # one side, in this (fresh) process
        result = side_quantviz(args.model) if args.side == "quantviz" else side_recipe(args.model)
        print("RESULT " + json.dumps(result))
        return 0
    a, b, first = [], [], None
    for i in range(args.rounds):
        for side, into in (("quantviz", a), ("recipe", b)):
            proc = subprocess.run([sys.executable, __file__, "--model", args.model, "--side", side],
                                  capture_output=True, text=True, check=True)
            result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
            into.append(result["seconds"])
            if side == "quantviz":
                first = result
            print(f"# round {i + 1} {side:<8} {result['seconds']:7.1f} s", flush=True)
    ratios = [x / y for x, y in zip(a, b)]
    print(f"{args.model}, {args.rounds} round(s):\n")
    print("| side | seconds min / median / max |")
    print("|---|---|")
    print(f"| quantviz torchao flow (trace .. run) | {spread(a)} |")
    print(f"| bare recipe call + runtime | {spread(b)} |")
    print(f"| ratio quantviz / bare, pair by pair | {min(ratios):.2f} / {statistics.median(ratios):.2f} / "
          f"{max(ratios):.2f} |\n")
    print(f"  quantviz stages (last round): {first['stages']}; float vs runtime {first['sqnr']:.1f} dB")
    g = first["first_graph"]
    print(f"  first graph (capture, {g['nodes']} nodes): snapshot {g['snapshot_s']:.2f} s + overview plan and DOT "
          f"{g['plan_and_dot_s']:.2f} s + graphviz layout {g['layout_s']:.2f} s = {g['total_s']:.2f} s; overview at "
          f"module depth {g['depth']}: {g['boxes']} boxes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
