"""Benchmark: ``quantviz recover`` on warm Ray workers against the same search run sequentially in one process,
on a small labelled model and on a zoo model where int8 loses most of its SQNR; the target met, the change set,
the runtime's figures before and after, and what stage reuse saved, as README-ready Markdown.

    .venv/bin/python bench/recover.py                      # both cases, 3 rounds a side
    .venv/bin/python bench/recover.py --cases digits --rounds 5

Sequential: a fresh Python process imports quantviz and runs the search with ``LocalEvaluator`` (every trial in
turn, forking from the pipelines it kept, as a warm worker does); its wall time counts from before the imports.
Ray: ``RayEvaluator`` from this process (which imports no torch): embedded Ray, one warm actor per CPU; wall time
from before ``ray.init`` to the last trial. Both sides run the same search on the same numbers, so they run the
same trials (checked: the trial keys must match). Spread: min / median / max over the rounds. Timings on a shared
machine are not the tool's: take the final ones when ``uptime``'s load is below 0.5.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WIDTH = os.cpu_count() or 1  # greedy trials asked for at once, on both sides (one per Ray worker): same trials

# name -> (model, PipelineConfig arguments, target kind, target value, budget)
CASES = {
    "digits": ("sample:digits_cnn", {"flow": "pt2e"}, "sqnr", 43.0, 10),
    "zoo": ("sample:zoo_tf_mobilenet", {"flow": "pt2e", "backend": "xnnpack"}, "sqnr", 10.5, 8),
}


def case(name: str):
    from quantviz.config import PipelineConfig
    from quantviz.recover.trial import Target

    model, config, kind, value, budget = CASES[name]
    return model, PipelineConfig(**config), Target(kind, value), budget


def summary(found, wall: float) -> dict:
    return {"wall": wall, "keys": sorted(t.key for t in found.trials), "met": found.met,
            "found": found.to_dict(), "engine": found.engine.to_dict()}


def sequential_child(name: str) -> None:
    """In a fresh process: the search with every trial in this process; one JSON line."""
    t0 = time.perf_counter()
    import warnings

    warnings.filterwarnings("ignore")
    from quantviz.recover.runner import LocalEvaluator, recover

    model, config, target, budget = case(name)
    evaluator = LocalEvaluator(model, config, total=budget + 1)
    found = recover(model, config, target, budget, evaluator=evaluator, width=WIDTH)
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({**summary(found, time.perf_counter() - t0), "cpu": usage.ru_utime + usage.ru_stime}))


def sequential(name: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--sequential-child", name], capture_output=True, text=True,
                         cwd=ROOT, timeout=7200)
    if out.returncode != 0:
        raise SystemExit(f"sequential child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def on_ray(name: str) -> dict:
    from quantviz.recover.runner import RayEvaluator, recover

    model, config, target, budget = case(name)
    t0 = time.perf_counter()
    evaluator = RayEvaluator(model, config, total=budget + 1)
    try:
        found = recover(model, config, target, budget, evaluator=evaluator, width=WIDTH)
        wall = time.perf_counter() - t0
    finally:
        evaluator.close()
    return summary(found, wall)


def spread(xs: list[float]) -> str:
    return f"{min(xs):.1f} / {statistics.median(xs):.1f} / {max(xs):.1f}"


def report(name: str, seqs: list[dict], rays: list[dict]) -> None:
    from quantviz.recover.results import markdown_table, summary_lines
    from quantviz.recover.search import Recovery

    found = Recovery.from_dict({**rays[-1]["found"], "engine": rays[-1]["engine"]})
    model = CASES[name][0]
    print(f"## {name}: {model}\n")
    print(markdown_table(found, model))
    print()
    for line in summary_lines(found, model):
        print(f"    {line}")
    same = all(r["keys"] == seqs[0]["keys"] for r in seqs + rays)
    s_wall, r_wall = [x["wall"] for x in seqs], [x["wall"] for x in rays]
    print()
    print("| side | rounds | wall s (min / median / max) | trials | speed-up (median) |")
    print("|---|---|---|---|---|")
    print(f"| sequential, one process (imports counted) | {len(seqs)} | {spread(s_wall)} | {len(seqs[0]['keys'])} | "
          "1.00x |")
    workers = rays[0]["engine"].get("workers")
    print(f"| Ray, {workers} warm workers (ray.init counted) | {len(rays)} | {spread(r_wall)} | "
          f"{len(rays[0]['keys'])} | {statistics.median(s_wall) / statistics.median(r_wall):.2f}x |")
    print()
    reuse = [x["engine"]["reuse_share"] for x in rays]
    e = rays[-1]["engine"]
    print(f"Same trials on both sides in every round: {'yes' if same else 'NO'}. Stage reuse (fork from kept "
          f"pipelines) saved {spread([100 * r for r in reuse])} % of the stage work on Ray "
          f"({e['stage_seconds_reused']:.1f} of {e['stage_seconds_without_reuse']:.1f} stage-seconds in the last "
          f"round; warm-up traces counted as work done), {100 * seqs[-1]['engine']['reuse_share']:.0f} % in one "
          f"process. Ray start-up {e.get('ray_init_seconds', 0):.1f} s; worker warm-up "
          f"{', '.join(f'{w:.1f}' for w in e.get('warm_seconds', []))} s (in parallel).")
    print()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--sequential-child", default=None)
    args = parser.parse_args()
    if args.sequential_child:
        sequential_child(args.sequential_child)
        return
    load = os.getloadavg()
    print(f"# quantviz recover: Ray against one process, {os.cpu_count()} CPUs, load average before "
          f"{load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}, {args.rounds} round(s) a side\n")
    if load[0] > 0.5:
        print(f"> The machine is not idle (load {load[0]:.2f}): these timings are not the tool's; take them again "
              "when `uptime` shows less than 0.5.\n")
    for name in args.cases:
        seqs, rays = [], []
        for i in range(args.rounds):
            seqs.append(sequential(name))
            print(f"{name} round {i + 1}: sequential {seqs[-1]['wall']:.1f} s", file=sys.stderr, flush=True)
            rays.append(on_ray(name))
            print(f"{name} round {i + 1}: ray {rays[-1]['wall']:.1f} s", file=sys.stderr, flush=True)
        report(name, seqs, rays)
    print(f"Load average after: {os.getloadavg()[0]:.2f}.")


if __name__ == "__main__":
    main()
