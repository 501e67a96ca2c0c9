"""Benchmark: where the time goes on real-size models, float against int8 on XNNPACK, from the runtime's ETDump.

    .venv/bin/python bench/latency.py
    .venv/bin/python bench/latency.py --models sample:real_regnetx_200mf --repeat 10

For each model: the pt2e flow with the XNNPACK backend (per-channel weights), then ``quantviz.timing.time_pipeline``:
the .pte run ``--repeat`` warm times (2 more first, dropped) with an ETDump, and the float model lowered to XNNPACK
the same way and timed the same way, in the same process. Prints the Markdown tables of docs/latency.md: per model
the whole run (Method::execute: median, min-max), the delegate call against the sum of the events XNNPACK reports
inside it, the events by XNNPACK operator kind (float and int8), and every pattern where int8 is slower than float;
then the ETDump's own cost: the same int8 program timed from Python (``perf_counter`` around ``forward``) loaded
with and without an ETDump, runs interleaved. Load (uptime) is printed before and after: figures taken under load
say so.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore")

from quantviz import Pipeline, PipelineConfig, load_model  # noqa: E402
from quantviz.timing.measure import runtime_inputs, time_pipeline  # noqa: E402
from quantviz.timing.place import kernel_op, xnn_operator  # noqa: E402
from quantviz.timing.profile import Machine, Profile, Stat  # noqa: E402

MODELS = ["sample:real_mobilenet_v2", "sample:real_regnetx_200mf", "sample:real_bert_base"]


def by_kind(profile: Profile) -> dict[str, Stat]:
    """Event time per operator kind (XNNPACK's operator, or the portable kernel's op), run by run."""
    groups: dict[str, list[Stat]] = {}
    for e in profile.events:
        if e.kind == "delegated":
            groups.setdefault(xnn_operator(e.name), []).append(e.time)
        elif e.kind == "kernel":
            groups.setdefault(f"portable {kernel_op(e.name)}", []).append(e.time)
    return {k: Stat.sum(v, profile.runs) for k, v in groups.items()}


def counts(profile: Profile) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in profile.events:
        if e.kind == "delegated":
            out[xnn_operator(e.name)] = out.get(xnn_operator(e.name), 0) + 1
    return out


def ms(s: Stat) -> str:
    return f"{s.median_ms:.3f} ({s.min_ms:.3f}–{s.max_ms:.3f})"


def etdump_overhead(buffer: bytes, batch: tuple, repeat: int) -> tuple[Stat, Stat]:
    """The same program timed from Python, loaded with and without an ETDump, runs interleaved."""
    from executorch.extension.pybindings import portable_lib as rt

    plain = rt._load_for_executorch_from_buffer(buffer)
    dumped = rt._load_for_executorch_from_buffer(buffer, enable_etdump=True)
    a, b = [], []
    for i in range(repeat + 2):
        for module, out in ((plain, a), (dumped, b)):
            t = time.perf_counter()
            module.forward(tuple(batch))
            if i >= 2:
                out.append((time.perf_counter() - t) * 1e3)
    return Stat(a), Stat(b)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    load_before = os.getloadavg()
    config = PipelineConfig(flow="pt2e", backend="xnnpack", per_channel=True)
    summary, kinds, slower, overhead = [], [], [], None
    machine, threads = Machine.here(), None
    for model in args.models.split(","):
        t = time.time()
        pipe = Pipeline(load_model(model), config).run()
        if not pipe.ok:
            print(f"{model}: failed at {pipe.failed.name}: {pipe.failed.error.message}", file=sys.stderr)
            continue
        timing = time_pipeline(pipe, repeat=args.repeat, threads=args.threads)
        r, fp = timing.report, timing.float_profile
        threads = r.profile.threads
        name = model.removeprefix("sample:")
        d = r.delegates[0] if r.delegates else None
        share = f"{d.events_sum.median_ms / d.call.median_ms:.0%}" if d else "–"
        fd = None
        if fp is not None:
            from quantviz.timing.latency import float_side  # noqa: F401  (the float report's delegates)
            calls = [e for e in fp.events if e.kind == "delegate_call"]
            inner = [e for e in fp.events if e.kind == "delegated"]
            if calls:
                fd = (Stat.sum([e.time for e in calls], fp.runs), Stat.sum([e.time for e in inner], fp.runs))
        fshare = f"{fd[1].median_ms / fd[0].median_ms:.0%}" if fd else "–"
        nq = sum(1 for e in r.profile.events if e.kind == "delegated")
        nf = sum(1 for e in fp.events if e.kind == "delegated") if fp else 0
        summary.append(f"| {name} | {ms(r.float_total) if r.float_total else '–'} | {ms(r.total)} | "
                       f"{r.speedup():.2f}x | {nf} / {nq} | {fshare} / {share} | "
                       f"{counts(r.profile).get('Convert', 0)} | {len(r.delegates)} |")
        fk, qk = (by_kind(fp) if fp else {}), by_kind(r.profile)
        fc, qc = (counts(fp) if fp else {}), counts(r.profile)
        for kind in sorted(set(fk) | set(qk), key=lambda k: -(qk.get(k, Stat([0])).median_ms)):
            f, q = fk.get(kind), qk.get(kind)
            kinds.append(f"| {name} | {kind} | {fc.get(kind, '–')} | {ms(f) if f else '–'} | "
                         f"{qc.get(kind, '–')} | {ms(q) if q else '–'} |")
        for row in r.slower():
            slower.append(f"| {name} | {row.label} | {ms(row.float)} | {ms(row.quantized)} | {row.speedup:.2f}x | "
                          f"{'yes' if row.slower_beyond_spread else 'no'} |")
        if r.float_total is not None and r.total.median_ms > r.float_total.median_ms:
            slower.append(f"| {name} | **whole model** | {ms(r.float_total)} | {ms(r.total)} | {r.speedup():.2f}x | "
                          f"{'yes' if r.total.min_ms > r.float_total.max_ms else 'no'} |")
        if overhead is None:
            program = pipe.artifact(pipe.role("program"))
            overhead = (name, *etdump_overhead(program.buffer, runtime_inputs(pipe.spec.example_inputs),
                                               args.repeat))
        print(f"  {name}: {time.time() - t:.0f}s", file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    print(f"Machine: {machine.cpu}, {machine.cores} cores; runtime threads {threads}; {args.repeat} warm runs "
          f"(2 dropped) per program; load average (1/5/15 min) {load_before[0]:.2f}/{load_before[1]:.2f}/"
          f"{load_before[2]:.2f} before, {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f} after.\n")
    print("| model | float ms | int8 ms | speed-up | events float / int8 | events / delegate call, float / int8 | "
          "int8 Converts | delegates |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(summary))
    print("\n| model | op kind | float events | float ms | int8 events | int8 ms |")
    print("|---|---|---|---|---|---|")
    print("\n".join(kinds))
    print("\n| model | where int8 is slower | float ms | int8 ms | speed-up | beyond the spread |")
    print("|---|---|---|---|---|---|")
    print("\n".join(slower) or "| – | none | | | | |")
    if overhead is not None:
        name, plain, dumped = overhead
        print("\n| ETDump overhead | model | without ETDump | with ETDump | cost |")
        print("|---|---|---|---|---|")
        print(f"| wall ms per forward() from Python | {name} (int8) | {ms(plain)} | {ms(dumped)} | "
              f"{dumped.median_ms - plain.median_ms:+.3f} ms ({dumped.median_ms / plain.median_ms - 1:+.1%}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
