"""Benchmark: a sweep's cells on Ray against the same cells one after another in one process.

    .venv/bin/python bench/sweep.py                # 8 cells: digits_cnn, mobilenet_v2 x fx, pt2e x none, xnnpack
    .venv/bin/python bench/sweep.py --rounds 5     # min / median / max over 5 rounds a side (default 3)
    .venv/bin/python bench/sweep.py --fresh        # also Ray with --fresh-process (a new worker per cell)
    .venv/bin/python bench/sweep.py --models sample:conv_add sample:digits_cnn   # smaller cells

Ray runs the cells on warm workers (one actor per CPU: libraries imported and export warmed up before the first
cell, the model built once per worker, a cell forking the stages it shares with the worker's last one of the same
model and flow); ``--fresh`` adds the old path, one task per cell in a new process. Timings on a shared machine
are not the tool's: take the final ones when ``uptime``'s load is below 0.5.

Sequential: a fresh Python process imports quantviz and runs ``quantviz.sweep.cell.run_cell`` for each cell in
turn; its wall time counts from before the imports (a Ray worker pays them too) and its peak RSS is VmHWM.
Ray: ``run_sweep`` in this process, which starts an embedded Ray (this machine's CPUs), runs one task per cell
and shuts Ray down; wall time from before ``ray.init`` to the last result. Start-up is ``ray.init``'s time.
Memory on Ray: the largest per-cell worker peak (VmHWM, reset per cell), and the peak of the summed PSS of every
process under this one (driver, GCS, raylet, workers), sampled every 2 s (the sampler's own CPU time is left out
of Ray's). CPU time (user + system) of every process on each side tells Ray's overhead apart from the machine's
load. Prints Markdown rows for the README.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ["sample:digits_cnn", "sample:mobilenet_v2"]
VALUES = {"flow": ["fx", "pt2e"], "partitioner": ["none", "xnnpack"]}


def cells(models: list[str]):
    from quantviz.sweep.grid import build_grid

    return build_grid(models, VALUES)


def sequential_child(models: list[str]) -> None:
    """Run in a fresh process: every cell in turn; prints one JSON line."""
    t0 = time.perf_counter()
    import warnings

    warnings.filterwarnings("ignore")
    from quantviz.sweep.cell import run_cell

    results = []
    for c in cells(models):
        r = run_cell(c.model, c.config, c.id, c.label)
        results.append({"cell": c.id, "label": f"{c.model} [{c.label}]", "ok": r.ok, "seconds": r.seconds,
                         "failed_stage": r.failed_stage})
    import resource

    # run_cell resets VmHWM per cell; getrusage's ru_maxrss is the process's lifetime peak
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"wall": time.perf_counter() - t0, "cells": results, "cpu": usage.ru_utime + usage.ru_stime,
                      "peak_rss_mb": usage.ru_maxrss / 1024}))


def sequential(models: list[str]) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--sequential-child", "--models", *models],
                         capture_output=True, text=True, cwd=ROOT, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"sequential child failed:\n{out.stderr[-3000:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    data["process_wall"] = time.perf_counter() - t0  # interpreter start-up included
    return data


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def pss_mb(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total / 1024


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of ``pids`` and of their children they reaped (restarted workers, for one)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in f[11:15])
        except (OSError, IndexError, ValueError):
            continue
    return total / tick


def on_ray(models: list[str], fresh: bool = False) -> dict:
    import ray

    from quantviz.sweep.ray_runner import run_sweep

    peak = [0.0]
    stop = threading.Event()

    sampler_cpu = [0.0]

    def sample() -> None:  # reading smaps_rollup of a 700 MB process costs ~30 ms CPU: every 2 s, CPU kept apart
        while not stop.is_set():
            t = time.thread_time()
            peak[0] = max(peak[0], pss_mb(descendants(os.getpid())))
            sampler_cpu[0] += time.thread_time() - t
            stop.wait(2.0)

    sampler = threading.Thread(target=sample, daemon=True)
    before = os.times()
    sampler.start()
    t0 = time.perf_counter()
    sweep = run_sweep(cells(models), shutdown=False, fresh_process=fresh)
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    # GCS, raylet, agents, workers (before they go), and this driver's own share of the time since t0 (its
    # children's times would count the sequential run and earlier rounds)
    after = os.times()
    cpu = cpu_seconds([p for p in descendants(os.getpid()) if p != os.getpid()]) + \
        (after.user - before.user) + (after.system - before.system) - sampler_cpu[0]
    workers = {int(c.worker.rsplit(":", 1)[1]) for c in sweep.cells if c.worker}
    # warm actors are gone by now (the pool stops them): their CPU time is what each reported last
    actor_cpu = sweep.engine.get("worker_cpu_seconds", {})
    live = set(descendants(os.getpid()))  # a stopped actor's process may not have exited yet: count it once
    cpu += sum(v for w, v in actor_cpu.items() if int(w.rsplit(":", 1)[1]) not in live)
    busiest = max(actor_cpu.values()) if actor_cpu else max(cpu_seconds([pid]) for pid in workers)
    ray.shutdown()
    e = sweep.engine
    return {"wall": wall, "init": e["ray_init_seconds"], "cpus": e["cluster_cpus"], "ray_version": e["ray_version"],
            "cells": [{"cell": c.cell, "label": f"{c.model} [{c.label}]", "ok": c.ok, "seconds": c.seconds,
                       "failed_stage": c.failed_stage, "peak_rss_mb": c.peak_rss_mb, "worker": c.worker}
                      for c in sweep.cells],
            "max_worker_peak_mb": max((c.peak_rss_mb or 0) for c in sweep.cells), "total_pss_peak_mb": peak[0],
            "cpu": cpu, "workers": len(workers), "busiest_worker_cpu": busiest,
            "reused_seconds": sum(c.reused_seconds for c in sweep.cells),
            "reused": sum(len(c.reused_stages) for c in sweep.cells),
            "cell_seconds": sum(c.seconds for c in sweep.cells)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fresh", action="store_true", help="also run Ray with a fresh process per cell")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--sequential-child", action="store_true")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.sequential_child:
        sequential_child(args.models)
        return
    load = os.getloadavg()
    seqs, rays, freshes = [], [], []
    for i in range(args.rounds):
        seqs.append(sequential(args.models))
        print(f"round {i + 1}: sequential {seqs[-1]['wall']:.1f} s", file=sys.stderr, flush=True)
        rays.append(on_ray(args.models))
        print(f"round {i + 1}: ray {rays[-1]['wall']:.1f} s (init {rays[-1]['init']:.1f} s)", file=sys.stderr,
              flush=True)
        if args.fresh:
            freshes.append(on_ray(args.models, fresh=True))
            print(f"round {i + 1}: ray fresh process {freshes[-1]['wall']:.1f} s", file=sys.stderr, flush=True)
    seq = min(seqs, key=lambda d: d["wall"])
    ray = min(rays, key=lambda d: d["wall"])
    n = len(seq["cells"])
    cell_sum = sum(c["seconds"] for c in ray["cells"])
    print(f"# {n} cells, {ray['cpus']} CPUs, Ray {ray['ray_version']}, load average before the run "
          f"{load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}, {args.rounds} round(s) a side")
    print()
    if load[0] > 0.5:
        print(f"> The machine is not idle (load {load[0]:.2f}): these timings are not the tool's; take them again "
              "when `uptime` shows less than 0.5.")
        print()
    med = statistics.median
    print("| side | wall s (min / median / max) | speed-up (median) | speed-up (min / min) |")
    print("|---|---|---|---|")
    sides = [("sequential, one process (imports counted)", seqs), ("Ray, warm workers (one actor per CPU)", rays)]
    if freshes:
        sides.append(("Ray, --fresh-process (a new worker per cell)", freshes))
    for label, runs in sides:
        walls = [r["wall"] for r in runs]
        seq_walls = [r["wall"] for r in seqs]
        print(f"| {label} | {min(walls):.1f} / {med(walls):.1f} / {max(walls):.1f} | "
              f"{med(seq_walls) / med(walls):.2f}x | {min(seq_walls) / min(walls):.2f}x |")
    print()
    saved = [r["reused_seconds"] / (r["reused_seconds"] + r["cell_seconds"]) for r in rays]
    print(f"Stage reuse on the warm workers: {rays[-1]['reused']} stage(s) forked from a worker's earlier cell in "
          f"the last round, {rays[-1]['reused_seconds']:.1f} s of stage work not redone (share of the cells' work: "
          f"{100 * min(saved):.0f} / {100 * med(saved):.0f} / {100 * max(saved):.0f} %).")
    print()
    print(f"Per cell, the fastest round of each side:")
    print()
    print("| cell | ok | sequential s | on Ray s | worker peak RSS MB |")
    print("|---|---|---|---|---|")
    for s, r in zip(seq["cells"], ray["cells"]):
        state = "ok" if r["ok"] else f"failed at {r['failed_stage']}"
        print(f"| {r['label']} | {state} | {s['seconds']:.1f} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} |")
    print()
    print("| cells | sequential, one process (s) | Ray, embedded (s) | speed-up | Ray start-up (s) | "
          "Ray without start-up (s) | speed-up without start-up | peak RSS sequential (MB) | "
          "peak RSS largest worker (MB) | peak PSS all Ray processes (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {n} | {seq['wall']:.1f} | {ray['wall']:.1f} | {seq['wall'] / ray['wall']:.2f}x | {ray['init']:.1f} | "
          f"{ray['wall'] - ray['init']:.1f} | {seq['wall'] / (ray['wall'] - ray['init']):.2f}x | "
          f"{seq['peak_rss_mb']:.0f} | {ray['max_worker_peak_mb']:.0f} | {ray['total_pss_peak_mb']:.0f} |")
    print()
    print(f"CPU time (user + system): sequential process {seq['cpu']:.1f} s; every Ray process "
          f"{ray['cpu']:.1f} s (Ray's own share: {ray['cpu'] - seq['cpu']:+.1f} s).")
    print(f"Cores each side got: sequential {seq['cpu'] / seq['wall']:.2f}, Ray {ray['cpu'] / ray['wall']:.2f} "
          f"(of {os.cpu_count()}; load average {os.getloadavg()[0]:.2f} after the run). {ray['workers']} worker "
          f"process(es); the busiest used {ray['busiest_worker_cpu']:.1f} s of CPU, so on an otherwise idle machine "
          f"Ray's wall would be about start-up + that = {ray['init'] + ray['busiest_worker_cpu']:.1f} s against the "
          f"sequential process's CPU time {seq['cpu']:.1f} s (projection, not measured: "
          f"{seq['cpu'] / (ray['init'] + ray['busiest_worker_cpu']):.2f}x).")
    print(f"Sum of cell times on Ray {cell_sum:.1f} s over {ray['cpus']} CPUs (ideal wall {cell_sum / ray['cpus']:.1f}"
          f" s); sequential cells {sum(c['seconds'] for c in seq['cells']):.1f} s + imports "
          f"{seq['wall'] - sum(c['seconds'] for c in seq['cells']):.1f} s.")


if __name__ == "__main__":
    main()
