"""Benchmark: quantviz's whole pipeline against the whole bare flow of the same configuration.

    .venv/bin/python bench/pipeline_overhead.py                 # every sample, both flows, 5 rounds
    .venv/bin/python bench/pipeline_overhead.py --samples digits_cnn mobilenet_v2 --flows pt2e --rounds 7

What is timed, per sample and flow, in one process after one warm-up call of each side:

- bare: one ``run_bare(spec, config)`` call (quantviz/bare_flow.py: the torch/executorch calls a user's own script
  makes for that configuration, export through the runtime's ``forward`` on every comparison batch);
- quantviz: one ``Pipeline(spec, config).run()`` call: every stage and everything the pipeline does around them,
  i.e. the graph snapshots it forces before a stage that changes its input in place, the eager check at trace, the
  copies at fuse and emit and the run stage's float/reference comparison.

The two alternate for ``--rounds`` rounds, each on a freshly loaded model (loading is outside the timing, and the
same for both). Reported: the median and the spread (min–max) of each side's whole-call seconds, and the ratio of
the medians. "outside stages" is quantviz's whole call minus the sum of its stages' own seconds: what the
pipeline adds between stages (mostly the forced snapshots).

A bare flow that fails is reported as failing, with its step and error, and gets no ratio (the two sides did not do
the same work); so does a quantviz run that fails. Memory: peak RSS (VmHWM) of a child process that runs one flow
once (the same child code for both).

Prints the README's Markdown table rows.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)  # library chatter on stderr; failures are reported from the results

from quantviz import Pipeline, PipelineConfig, load_model  # noqa: E402
from quantviz.bare_flow import BareRun, run_bare  # noqa: E402


@dataclass
class Side:
    """One side's whole-call seconds over the rounds, and how its last call ended."""

    seconds: list[float] = field(default_factory=list)
    outside: list[float] = field(default_factory=list)  # quantviz only: whole call minus the stages' own time
    parts: dict[str, list[float]] = field(default_factory=dict)  # bare step / quantviz stage -> seconds per round
    failure: str = ""  # "" when every step/stage ran

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def add_parts(self, seconds: dict[str, float]) -> None:
        for name, s in seconds.items():
            self.parts.setdefault(name, []).append(s)

    def parts_line(self) -> str:
        return " ".join(f"{name} {statistics.median(s):.3f}" for name, s in self.parts.items())

    def cell(self) -> str:
        return f"{self.median:.3f} ({min(self.seconds):.3f}–{max(self.seconds):.3f})"


def time_bare(sample: str, config: PipelineConfig) -> tuple[float, BareRun]:
    spec = load_model(f"sample:{sample}")
    t = time.perf_counter()
    bare = run_bare(spec, config, explicit={"flow"})  # the flows compared are given (fx with --partitioner xnnpack)
    return time.perf_counter() - t, bare


def time_quantviz(sample: str, config: PipelineConfig) -> tuple[float, Pipeline]:
    spec = load_model(f"sample:{sample}")
    t = time.perf_counter()
    pipe = Pipeline(spec, config, explicit={"flow"}).run()
    return time.perf_counter() - t, pipe


def bare_failure(bare: BareRun) -> str:
    return "" if bare.ok else f"bare fails at {bare.failed_step} ({bare.error[:120]})"


def quantviz_failure(pipe: Pipeline) -> str:
    if pipe.ok:
        return ""
    err = pipe.failed.error
    return f"quantviz fails at {pipe.failed.name} ({err.message[:120]})"


def measure(sample: str, config: PipelineConfig, rounds: int) -> tuple[Side, Side]:
    time_bare(sample, config), time_quantviz(sample, config)  # warm-up: imports, kernel registration, caches
    bare, quantviz = Side(), Side()
    for _ in range(rounds):
        seconds, run = time_bare(sample, config)
        bare.seconds.append(seconds)
        bare.failure = bare_failure(run)
        bare.add_parts(run.seconds)
        seconds, pipe = time_quantviz(sample, config)
        quantviz.seconds.append(seconds)
        quantviz.outside.append(seconds - sum(r.seconds for r in pipe.results.values()))
        quantviz.failure = quantviz_failure(pipe)
        quantviz.add_parts({name: r.seconds for name, r in pipe.results.items()})
    return bare, quantviz


def child(kind: str, sample: str, flow: str, overrides: str) -> None:
    config = PipelineConfig(flow=flow, **json.loads(overrides))
    (time_bare if kind == "bare" else time_quantviz)(sample, config)
    # VmHWM, not ru_maxrss: Linux carries the parent's ru_maxrss through fork+exec into the child
    hwm_kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                  if line.startswith("VmHWM:"))
    print(json.dumps({"peak_rss_mb": hwm_kb / 1024}))


def peak_rss(kind: str, sample: str, flow: str, overrides: dict) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", kind, sample, flow, json.dumps(overrides)],
                         capture_output=True, text=True, timeout=1200, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"the {kind} child for {sample} {flow} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def main() -> None:
    from sample_models import SAMPLES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", nargs="*", default=[s for s in SAMPLES if s != "not_traceable"
                                                         and not s.startswith("zoo_")])
    parser.add_argument("--flows", nargs="*", default=["fx", "pt2e"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fusion", default=None, help="PipelineConfig.fusion for every run (default: its default)")
    parser.add_argument("--partitioner", default=None, help="PipelineConfig.partitioner for every run")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-memory children")
    parser.add_argument("--per-stage", action="store_true",
                        help="after each row, the median seconds of each bare step and each quantviz stage")
    parser.add_argument("--child", nargs=4, metavar=("KIND", "SAMPLE", "FLOW", "OVERRIDES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    overrides = {k: v for k, v in (("fusion", args.fusion), ("partitioner", args.partitioner)) if v is not None}
    print(f"rounds: {args.rounds}; seconds are the median (min–max) of whole calls; config overrides: "
          f"{overrides or 'none'}\n")
    print("| model | flow | bare s | quantviz s | time ratio | quantviz outside stages s | bare peak RSS MB | "
          "quantviz peak RSS MB | RSS ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    failures: list[str] = []
    for sample in args.samples:
        for flow in args.flows:
            config = PipelineConfig(flow=flow, **overrides)
            bare, quantviz = measure(sample, config, args.rounds)
            failed = bare.failure or quantviz.failure
            ratio = "—" if failed else f"{quantviz.median / bare.median:.2f}"
            outside = statistics.median(quantviz.outside)
            if args.no_rss:
                rss = "| | |"
            else:
                rb, rq = peak_rss("bare", sample, flow, overrides), peak_rss("quantviz", sample, flow, overrides)
                rss = f"| {rb:.0f} | {rq:.0f} | {rq / rb:.2f}"
            print(f"| {sample} | {flow} | {bare.cell()} | {quantviz.cell()} | {ratio} | {outside:.3f} {rss} |",
                  flush=True)
            if args.per_stage:
                print(f"|  | bare steps | {bare.parts_line()} |\n|  | quantviz stages | {quantviz.parts_line()} |")
            if failed:
                failures.append(f"{sample} {flow}: " + "; ".join(x for x in (bare.failure, quantviz.failure) if x))
    if failures:
        print("\nNo ratio where a side failed (the two did not do the same work):")
        for line in failures:
            print(f"- {line}")


if __name__ == "__main__":
    main()
