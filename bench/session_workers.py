"""Benchmark: first graph and last stage of a run in the app's thread (BackgroundRun) vs in a session worker process
(ProcessRun), on an idle process, beside another run sleeping inside its calibrate stage, and after a config change.

    .venv/bin/python bench/session_workers.py                      # digits_cnn and mobilenet_v2, 3 rounds each
    .venv/bin/python bench/session_workers.py --models sample:digits_cnn --rounds 1 --cases alone beside change

Each round is a fresh Python process with the warm fork server already started (torch imported in both, as in the
app): the clock starts when the model is chosen (``load_model`` + ``Pipeline`` in the thread case, ``ProcessRun.start``
in the worker case) and stops when the trace stage's GraphView is readable by the caller ("first graph") and when
the last stage has a result ("last stage"). "beside a sleeper": another run (tests/fixtures/process_run_models.py,
``QUANTVIZ_TEST_SLEEP`` s asleep in its calibrate stage, started first in the same mode) is inside that stage when
the clock starts: a thread waits for ``TORCH_LOCK``, a worker does not. "config change": the model's run ended
(not timed), then the fusion changes to quantviz's kernels (fuse, emit and run run again): the thread forks the
pipeline in its process, the worker takes the idle worker (``ProcessRun.take_worker``: the fork in the worker);
"worker, fresh" is a new worker running from trace (the app before the hand-over); "first graph" is then the fuse
stage's.
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


def one_round(mode: str, model: str, case: str) -> dict[str, float]:
    """In this process (a fresh one): seconds to the first graph and to the last stage."""
    import time
    from functools import partial

    from quantviz import Pipeline, PipelineConfig, load_model
    from quantviz.background import BackgroundRun
    from quantviz.process_run import ProcessRun
    from quantviz.workers import warm

    warm()

    def make(ref: str, config: PipelineConfig):
        if mode != "thread":
            return ProcessRun(partial(load_model, ref), config).start()
        return BackgroundRun(Pipeline(load_model(ref), config)).start()

    if case == "beside":
        sleeper = make(SLEEPER, PipelineConfig(until="convert"))
        while sleeper.state().current != "calibrate":
            time.sleep(0.02)
    first_stage = "trace"
    if case == "change":
        before = make(model, PipelineConfig())
        before.join(1800)
        assert before.pipe.ok
        changed, first_stage = PipelineConfig(fusion="quantviz"), "fuse"
        t0 = time.perf_counter()
        if mode == "thread":
            run = BackgroundRun(before.pipe.fork(changed)).start()
        else:
            run = ProcessRun(partial(load_model, model), changed)
            if mode == "worker":
                assert run.take_worker(before)
            run.start()
    else:
        t0 = time.perf_counter()
        run = make(model, PipelineConfig())
    assert run.wait_for(first_stage, 900) and run.pipe.results[first_stage].graph is not None
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
    parser.add_argument("--cases", nargs="+", choices=("alone", "beside", "change"), default=["alone"],
                        help="alone; beside a run sleeping in calibrate; a config change after a whole run")
    parser.add_argument("--one", nargs=3, metavar=("MODE", "MODEL", "BESIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        mode, model, case = args.one
        print(json.dumps(one_round(mode, model, case)))
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QUANTVIZ_TEST_SLEEP": str(SLEEP_S)}
    print("| model | where | case | rounds | first graph (median, min–max) | last stage (median) | load average |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        for case in args.cases:
            for mode in ("thread", "worker") + (("worker, fresh",) if case == "change" else ()):
                rows = []
                for _ in range(args.rounds):
                    out = subprocess.run([sys.executable, __file__, "--one", mode, model, case],
                                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
                    if out.returncode != 0:
                        raise SystemExit(out.stderr[-3000:])
                    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                    print(f"{model} {mode} {case}: {rows[-1]}", file=sys.stderr)
                f = [r["first_graph_s"] for r in rows]
                last = [r["last_stage_s"] for r in rows]
                loads = [r["load"] for r in rows]
                words = {"alone": "alone", "beside": f"beside a run asleep in calibrate ({SLEEP_S} s)",
                         "change": "config change (fusion: quantviz)"}[case]
                print(f"| {model} | {mode} | {words} | {len(rows)} | {statistics.median(f):.2f} s "
                      f"({min(f):.2f}–{max(f):.2f}) | {statistics.median(last):.1f} s | "
                      f"{min(loads):.1f}–{max(loads):.1f} |", flush=True)


if __name__ == "__main__":
    main()
