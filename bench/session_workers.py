"""Benchmark: first graph and last stage of a run in the app's thread (BackgroundRun) vs in a session worker process
(ProcessRun), on an idle process and beside another run sleeping inside its calibrate stage.

    .venv/bin/python bench/session_workers.py                      # digits_cnn and mobilenet_v2, 3 rounds each
    .venv/bin/python bench/session_workers.py --models sample:digits_cnn --rounds 1

Each round is a fresh Python process with the warm fork server already started (torch imported in both, as in the
app): the clock starts when the model is chosen (``load_model`` + ``Pipeline`` in the thread case, ``ProcessRun.start``
in the worker case) and stops when the trace stage's GraphView is readable by the caller ("first graph") and when
the last stage has a result ("last stage"). "beside a sleeper": another run (tests/fixtures/process_run_models.py,
``QUANTVIZ_TEST_SLEEP`` s asleep in its calibrate stage, started first in the same mode) is inside that stage when
the clock starts: a thread waits for ``TORCH_LOCK``, a worker does not.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLEEPER = "tests/fixtures/process_run_models.py:make_sleeping"
SLEEP_S = 20


def one_round(mode: str, model: str, beside: bool) -> dict[str, float]:
    """In this process (a fresh one): seconds to the first graph and to the last stage."""
    import time
    from functools import partial

    from quantviz import Pipeline, PipelineConfig, load_model
    from quantviz.background import BackgroundRun
    from quantviz.process_run import ProcessRun
    from quantviz.workers import warm

    warm()

    def make(ref: str, config: PipelineConfig):
        if mode == "worker":
            return ProcessRun(partial(load_model, ref), config).start()
        return BackgroundRun(Pipeline(load_model(ref), config)).start()

    if beside:
        sleeper = make(SLEEPER, PipelineConfig(until="convert"))
        while sleeper.state().current != "calibrate":
            time.sleep(0.02)
    t0 = time.perf_counter()
    run = make(model, PipelineConfig())
    assert run.wait_for("trace", 900) and run.pipe.results["trace"].graph is not None
    first = time.perf_counter() - t0
    run.join(1800)
    last = time.perf_counter() - t0
    assert run.pipe.ok, {k: v.error for k, v in run.pipe.results.items() if not v.ok}
    return {"first_graph_s": first, "last_stage_s": last, "load": os.getloadavg()[0]}


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["sample:digits_cnn", "sample:mobilenet_v2"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--beside", action="store_true", help="also measure beside a run sleeping in calibrate")
    parser.add_argument("--one", nargs=3, metavar=("MODE", "MODEL", "BESIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        mode, model, beside = args.one
        print(json.dumps(one_round(mode, model, beside == "1")))
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QUANTVIZ_TEST_SLEEP": str(SLEEP_S)}
    print("| model | where | case | rounds | first graph (median, min–max) | last stage (median) | load average |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        for beside in ([False, True] if args.beside else [False]):
            for mode in ("thread", "worker"):
                rows = []
                for _ in range(args.rounds):
                    out = subprocess.run([sys.executable, __file__, "--one", mode, model, "1" if beside else "0"],
                                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
                    if out.returncode != 0:
                        raise SystemExit(out.stderr[-3000:])
                    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                    print(f"{model} {mode} beside={beside}: {rows[-1]}", file=sys.stderr)
                f = [r["first_graph_s"] for r in rows]
                last = [r["last_stage_s"] for r in rows]
                loads = [r["load"] for r in rows]
                case = f"beside a run asleep in calibrate ({SLEEP_S} s)" if beside else "alone"
                print(f"| {model} | {mode} | {case} | {len(rows)} | {statistics.median(f):.2f} s "
                      f"({min(f):.2f}–{max(f):.2f}) | {statistics.median(last):.1f} s | "
                      f"{min(loads):.1f}–{max(loads):.1f} |", flush=True)


if __name__ == "__main__":
    main()
