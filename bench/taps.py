"""Benchmark: the blame table inside delegates through ExecuTorch's intermediate-output taps, per backend, checked
against XNNPACK's per-op mode on the same model in the same run.

    .venv/bin/python bench/taps.py
    .venv/bin/python bench/taps.py --models sample:conv_add --backends xnnpack,arm-tosa

For each model and backend (the pt2e flow, per-channel weights, the fix quantviz offers applied when the run needs
one): how many quantized patterns the blame table has a runtime value for without taps and with them, the delegate
calls of the run's program and of the tapped one (and whether tapping changed the partitioning), the seconds the
taps add (one more lowering and one more run), the largest local error. On XNNPACK also the per-op program
(``--delegate-granularity op``, every op its own delegate): per pattern, the runtime's largest error against the
reference with taps and per op, and on how many patterns they agree. Data: the blame table's first comparison
batch. Prints the table of docs/backends.md "Inside delegates"; seconds are one run each.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
import warnings

warnings.filterwarnings("ignore")

from quantviz import Pipeline, PipelineConfig, load_model  # noqa: E402
from quantviz.backend_table import backend_config  # noqa: E402
from quantviz.numerics.compare import compare  # noqa: E402

MODELS = ["sample:conv_add", "sample:mobilenet_v2", "sample:zoo_inverted_residual", "sample:zoo_convnext"]
BACKENDS = ["xnnpack", "arm-tosa", "openvino"]


def run(model: str, config: PipelineConfig) -> Pipeline:
    pipe = Pipeline(load_model(model), config).run()
    if not pipe.ok and pipe.failed.error.fix:  # the remedy quantviz offers, applied as the user would
        pipe = Pipeline(load_model(model), config.with_changes(**pipe.failed.error.fix)).run()
    return pipe


def lsb(x: float) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:g}"


def row(model: str, backend: str) -> str:
    config = backend_config(PipelineConfig(flow="pt2e", per_channel=True), backend)
    pipe = run(model, config)
    if not pipe.ok:
        return f"| {model} | {backend} | the run fails at {pipe.failed.name}: {str(pipe.failed.error)[:80]} |"
    t0 = time.perf_counter()
    plain = compare(pipe, taps=False)
    t1 = time.perf_counter()
    tapped = compare(pipe, taps=True)
    t2 = time.perf_counter()
    before = sum(bool(r.runtime_source) for r in plain.blame)
    after = sum(bool(r.runtime_source) for r in tapped.blame)
    taps = tapped.taps
    worst = max((r.runtime_local_max_lsb for r in tapped.blame if not math.isnan(r.runtime_local_max_lsb)),
                default=math.nan)
    if taps is None or not taps.available:
        what = taps.summary() if taps is not None else "not run"
        parts = f"{what[:120]} | – | – |"
    else:
        parts = (f"{taps.delegate_calls_untapped} → {taps.delegate_calls}"
                 f"{' (changed)' if taps.partition_changed else ''} | {t2 - t1 - (t1 - t0):+.1f} | {lsb(worst)} |")
    per_op = "–"
    if backend == "xnnpack" and taps is not None and taps.available:
        op_pipe = run(model, config.with_changes(delegate_granularity="op"))
        op_rows = {r.pattern: r for r in compare(op_pipe, check_granularity=False).blame}
        pairs = [(r.runtime_vs_reference_max_lsb, op_rows[r.pattern].runtime_vs_reference_max_lsb)
                 for r in tapped.blame if r.pattern in op_rows]
        both = [(a, b) for a, b in pairs if not (math.isnan(a) or math.isnan(b))]
        same = sum(a == b for a, b in both)
        gap = max((abs(a - b) for a, b in both), default=math.nan)
        per_op = f"{same} of {len(both)} equal, max gap {lsb(gap)} LSB"
    return f"| {model} | {backend} | {len(plain.blame)} | {before} → {after} | {parts} {per_op} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args()
    print("| model | backend | patterns | with a runtime value: no taps → taps | delegate calls: run → tapped | "
          "seconds taps add | largest local error (LSB) | XNNPACK per-op mode: runtime error per pattern |")
    print("|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        for backend in args.backends.split(","):
            print(row(model, backend), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
