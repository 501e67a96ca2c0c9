"""The quantviz command line.

    quantviz models
    quantviz stages
    quantviz run sample:digits_cnn --flow pt2e --partitioner xnnpack --out out/pt2e
    quantviz report sample:digits_cnn --out report.html
    quantviz why sample:conv_add --flow pt2e
    quantviz compare sample:mobilenet_v2 --flow pt2e --partitioner xnnpack --out out/num
    quantviz device out/pt2e --etdump device.etdp --debug-buffer debug.bin
    quantviz sweep sample:conv_add sample:digits_cnn --flow fx,pt2e --partitioner none,xnnpack --out out/sweep
    quantviz recover sample:digits_cnn --flow pt2e --target-sqnr 40 --budget 12 --out out/recover

Exit codes: 0 everything asked for succeeded; 1 bad arguments or a model that cannot be loaded;
2 a stage failed (summary.json is still written); 3 compare --fail-below-sqnr: the runtime is below the
given SQNR, or sweep --baseline: a cell dropped more than --max-drop-db or newly fails, or recover: the target
was not met within the budget; 130 interrupted.
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from dataclasses import fields
from pathlib import Path

from quantviz.config import ConfigError, PipelineConfig, config_flags


class UsageError(Exception):
    """Bad arguments: exit code 1."""


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The flags shared by every command that runs the pipeline: one per PipelineConfig field, generated from the
    field's metadata (see ``quantviz.config.option``)."""
    from quantviz.flows import choices_of

    p.add_argument("model", help="sample:NAME, path/to/file.py:factory, or path/to/program.pt2; export_llm with "
                                 "--llm-config (the model is the one the configuration names)")
    for f in fields(PipelineConfig):
        meta, default = f.metadata, f.default
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        kwargs: dict = {"dest": f.name, "help": meta["help"], "action": _Given}
        if isinstance(default, bool):  # a flag turns the default off (--no-check-guards) or on
            kwargs.update(kind="switch", const=not default, default=default)
        elif isinstance(default, tuple):
            kwargs.update(kind="append", default=[], metavar=meta.get("metavar"))
            kwargs["help"] += " (repeatable)"
        else:
            kwargs.update(type=type(default), default=default, choices=choices_of(f),
                          metavar=meta.get("metavar"))
            kwargs["help"] += f" (default: {default})"
        p.add_argument(flag, **kwargs)
    p.set_defaults(given=frozenset())


class _Given(argparse.Action):
    """argparse's store, store_true/false (``kind="switch"``) or append, noting the field in ``namespace.given``:
    the user chose it, so a backend's defaults leave it alone (``given_fields``)."""

    def __init__(self, option_strings: list[str], dest: str, kind: str = "store", **kwargs) -> None:
        self.kind = kind
        super().__init__(option_strings, dest, nargs=0 if kind == "switch" else None, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        value = self.const if self.kind == "switch" else \
            [*(getattr(namespace, self.dest, None) or []), values] if self.kind == "append" else values
        setattr(namespace, self.dest, value)
        namespace.given = getattr(namespace, "given", frozenset()) | {self.dest}


def needs_line(config: PipelineConfig, applied: dict) -> str:
    """What the backend's record applied (``with_backend_defaults``' changes) to ``config``, said before anything
    runs: "the xnnpack backend needs --flow pt2e: applied (...)"."""
    from quantviz.backends import backend_name

    before = config.with_changes(**{name: getattr(PipelineConfig(), name) for name in applied})
    return (f"the {backend_name(config)} backend needs {config_flags(config, base=before)}: applied (its record's "
            "defaults; an option given is kept)")


def given_fields(args: argparse.Namespace) -> frozenset[str]:
    """The config fields given on the command line (``quantviz run M --flow fx --backend xnnpack``: flow and backend),
    which ``with_backend_defaults`` leaves as given."""
    return getattr(args, "given", frozenset())


def add_timing_options(p: argparse.ArgumentParser) -> None:
    """``--repeat``, ``--threads``, ``--no-float-timing``: how the program is timed with an ETDump."""
    from quantviz.timing.measure import DEFAULT_REPEAT

    p.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, metavar="N",
                   help="time the .pte over N warm runs with an ETDump (2 more are run first and dropped), and the "
                        f"float model lowered the same way; 0: no timing (default: {DEFAULT_REPEAT})")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="the runtime's thread pool for the timed runs (default: as the runtime sets it)")
    p.add_argument("--no-float-timing", action="store_true",
                   help="time only the quantized program, not the float model lowered the same way")


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    try:
        return PipelineConfig(**{f.name: getattr(args, f.name) for f in fields(PipelineConfig)})
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quantviz", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="list the sample models")
    sub.add_parser("recipes", help="list the ExecuTorch export recipes of the installed backends (--recipe NAME)")
    stages = sub.add_parser("stages", help="list a flow's stages in order (absent ones with their reason)")
    stages.add_argument("--flow", default=None, help="one flow (default: every flow)")
    run = sub.add_parser("run", help="run the flow and write summary.json, stage graphs and model.pte")
    add_run_options(run)
    run.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    run.add_argument("--no-svg", action="store_true", help="write DOT only, skip `dot` layout to SVG")
    add_timing_options(run)
    why = sub.add_parser("why", help="the pattern ledger: what became of every quantized pattern, and why")
    add_run_options(why)
    why.add_argument("--out", type=Path, default=Path("why.json"), help="JSON file (default: why.json)")
    why.add_argument("--repeat", type=int, default=0, metavar="N",
                     help="also run the program N warm times with an ETDump and give every row its measured cost "
                          "and share of the run (runs the flow to the end; default: 0, off)")
    why.add_argument("--threads", type=int, default=None, metavar="N", help="with --repeat: the runtime's threads")
    compare = sub.add_parser("compare", help="run the flow and compare float, reference, fused and runtime numerics "
                                             "(numerics.json and CSV tables)")
    add_run_options(compare)
    compare.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    compare.add_argument("--fail-below-sqnr", type=float, default=None, metavar="DB",
                         help="exit 3 when the runtime-vs-float SQNR (evaluation data) is below DB")
    compare.add_argument("--max-ppl-increase", type=float, default=None, metavar="PCT",
                         help="language models: exit 3 when the runtime's perplexity on the held-out text is more "
                              "than PCT percent above the float model's")
    compare.add_argument("--sensitivity", type=int, default=0, metavar="N",
                         help="also keep each of the first N weighted layers float in turn (default: 0, off)")
    compare.add_argument("--no-taps", action="store_true",
                         help="do not tap the values inside delegates of several ops (taps lower the program once "
                              "more; the blame table then has only each delegate's outputs)")
    add_timing_options(compare)
    report = sub.add_parser("report", help="run the flow and write one standalone HTML report")
    add_run_options(report)
    report.add_argument("--out", type=Path, default=Path("report.html"), help="HTML file (default: report.html)")
    backends = sub.add_parser("backends", help="one model on every installed backend side by side: delegated share, "
                                               "ops left out and why, .pte size, SQNR (backends.csv/json/html)")
    backends.add_argument("model", help="sample:NAME, path/to/file.py:factory, or path/to/program.pt2")
    backends.add_argument("--backends", default=None, help="comma-separated backends (default: every installed one)")
    backends.add_argument("--per-tensor", action="store_true", help="per-tensor weights (default: per channel)")
    backends.add_argument("--held-out", type=int, default=0, metavar="N",
                          help="measure on N synthetic held-out batches (default: the factory's evaluation data)")
    backends.add_argument("--out", type=Path, default=Path("out/backends"), help="output folder")
    backends.add_argument("--ray", action="store_true", help="one Ray task a backend (the local machine by default)")
    backends.add_argument("--address", default=None, help="with --ray: join this Ray cluster")
    device = sub.add_parser("device", help="a device's ETDump (and debug buffer) placed on the stages of a `run --out "
                                           "DIR`: its times per pattern beside this machine's, its values against "
                                           "this machine's runtime and the first node that diverges")
    device.add_argument("dir", type=Path, help="the folder `quantviz run ... --out DIR` wrote (model.pte, "
                                               "etrecord.bin, inputs.pt, latency.json)")
    device.add_argument("--etdump", type=Path, required=True, metavar="FILE", help="the .etdp the device wrote")
    device.add_argument("--debug-buffer", type=Path, default=None, metavar="FILE",
                        help="the debug buffer the device wrote with it (intermediate values)")
    device.add_argument("--out", type=Path, default=None, help="JSON file (default: DIR/device.json)")
    from quantviz.sweep.grid import add_sweep_options

    sweep = sub.add_parser("sweep", help="many models x the cross product of comma-separated option values, the "
                                         "cells on warm Ray workers (one per CPU): sweep.json, sweep.csv, sweep.html")
    add_sweep_options(sweep)
    sweep.add_argument("--sensitivity", type=int, default=0, metavar="N",
                       help="per cell, keep each of the first N weighted layers float in turn, one task per layer "
                            "(default: 0, off)")
    sweep.add_argument("--out", type=Path, required=True, help="output folder")
    sweep.add_argument("--address", default=None, help="join this Ray cluster (e.g. 10.0.0.5:6379, or auto) instead "
                                                       "of starting Ray in this process")
    sweep.add_argument("--num-cpus", type=int, default=None, metavar="N",
                       help="CPUs of the embedded Ray (default: this machine's); one cell takes one CPU")
    sweep.add_argument("--cell-memory", type=float, default=None, metavar="GIB",
                       help="memory each cell declares to Ray's scheduler (default: 1.5)")
    sweep.add_argument("--fresh-process", action="store_true",
                       help="a new worker process for every cell (default: workers are reused, so torch is "
                            "imported once per worker; a crash still takes only its own cell)")
    sweep.add_argument("--baseline", type=Path, default=None, metavar="SWEEP_JSON",
                       help="an earlier sweep.json (or its folder) to gate against")
    sweep.add_argument("--max-drop-db", type=float, default=1.0, metavar="DB",
                       help="with --baseline: exit 3 when a cell's SQNR dropped more than DB, or it newly fails "
                            "(default: 1.0)")
    recover = sub.add_parser("recover", help="search config changes (layers kept float, per-channel weights, "
                                             "observers, ...) for the smallest set that meets a target, each run "
                                             "to the runtime on warm Ray workers: recover.json/csv, reproduce.py")
    add_run_options(recover)
    goal = recover.add_mutually_exclusive_group(required=True)
    goal.add_argument("--target-sqnr", type=float, default=None, metavar="DB",
                      help="float-vs-runtime SQNR on the evaluation data to reach, in dB")
    goal.add_argument("--max-accuracy-drop", type=float, default=None, metavar="PCT",
                      help="largest float-minus-runtime accuracy drop allowed, in percentage points (needs "
                           "labelled evaluation data)")
    goal.add_argument("--max-ppl-increase", type=float, default=None, metavar="PCT",
                      help="language models: largest increase of the runtime's perplexity over the float model's on "
                           "the held-out text, in percent (e.g. 5)")
    recover.add_argument("--max-latency-ms", type=float, default=None, metavar="MS",
                         help="also require the runtime's median run time here (ETDump, 10 warm runs) to be at "
                              "most MS milliseconds")
    recover.add_argument("--budget", type=int, default=16, metavar="N",
                         help="at most N trials besides the base run, each a whole run to the runtime (default: 16)")
    recover.add_argument("--out", type=Path, default=Path("out/recover"), help="output folder (default: out/recover)")
    recover.add_argument("--address", default=None, help="join this Ray cluster instead of starting Ray here")
    recover.add_argument("--workers", type=int, default=None, metavar="N",
                         help="warm workers (default: one per CPU of the Ray cluster)")
    recover.add_argument("--num-cpus", type=int, default=None, metavar="N", help="CPUs of the embedded Ray")
    recover.add_argument("--in-process", action="store_true",
                         help="run the trials one after another in this process (no Ray)")
    return parser


def _quiet_libraries() -> None:
    """Keep the pinned libraries' known noise off the user's terminal, and nothing else: other warnings and log
    records still show (and a failing stage still keeps the libraries' log lines).

    The noise, each filtered where it comes from:

    - ``torchao/__init__.py`` logs ``Failed to load .../torchao/_C_mxfp8...so`` and ``..._C_cutlass_90a...so``
      (logger ``torchao``, WARNING) when it is imported: optional CUDA extensions that cannot load on CPU torch;
    - ``torch/utils/_pytree.py`` logs ``<enum 'KernelPreference'> is an Enum subclass and is now natively
      supported ...`` (logger ``torch.utils._pytree``) when torchao registers that enum;
    - torch's pytree warns ``FutureWarning: `isinstance(treespec, LeafSpec)` is deprecated`` from its own
      internals (copying tree specs during export), not from anything the user wrote;
    - ``executorch.devtools.inspector`` makes ``torch.frombuffer`` warn ``The given buffer is not writable`` while
      it reads the ETDump (``quantviz compare``).
    """
    import re

    import torch  # noqa: F401  torch sets up its loggers on import: add the filters after that

    noise = {
        "torchao": re.compile(r"Failed to load \S*torchao[/\\]_C\w*\S*\.(so|pyd)\b"),
        "torch.utils._pytree": re.compile(r"<enum '\w+'> is an Enum subclass and is now natively supported by "
                                          r"torch\.compile"),
    }
    for name, pattern in noise.items():
        logger = logging.getLogger(name)
        if any(getattr(f, "quantviz_noise", None) == name for f in logger.filters):
            continue

        def keep(record: logging.LogRecord, pattern: re.Pattern = pattern) -> bool:
            try:
                return pattern.match(record.getMessage()) is None
            except Exception:  # noqa: BLE001 - a record whose arguments do not format is not our noise
                return True

        keep.quantviz_noise = name  # type: ignore[attr-defined]  (so a second call adds no second filter)
        logger.addFilter(keep)
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning)
    warnings.filterwarnings("ignore", message=r"The given buffer is not writable", category=UserWarning,
                            module=r"executorch\.devtools\.inspector")


def cmd_models() -> int:
    from quantviz.catalog import catalog

    samples = catalog()
    width = max(map(len, samples))
    for name, desc in samples.items():
        print(f"sample:{name:<{width}}  {desc}")
    return 0


def cmd_recipes() -> int:
    from quantviz.backends import all_recipes

    for name, (backend, rtype) in all_recipes().items():
        print(f"{name:<48} {backend.name:<10} {type(rtype).__name__}.{rtype.name}")
    return 0


def cmd_stages(flow_name: str | None = None) -> int:
    from quantviz.flows import FLOWS
    from quantviz.flows.base import Absent

    if flow_name is not None and flow_name not in FLOWS:
        raise UsageError(f"no flow named {flow_name!r}: {', '.join(FLOWS)}")
    for name, flow in FLOWS.items():
        if flow_name not in (None, name):
            continue
        print(f"{name}: {flow.description}")
        for i, slot in enumerate(flow.slots, 1):
            if isinstance(slot, Absent):
                print(f"  {i:2d}. {slot.name:<10} (not part of this flow: {slot.reason})")
            else:
                print(f"  {i:2d}. {slot.name:<10} {slot.description}")
    return 0


def run_pipeline(args: argparse.Namespace):
    """Load the model and run the flow, printing one line a stage."""
    from quantviz.data import evaluation_data
    from quantviz.backends import require_backend
    from quantviz.flows import FLOWS, describe_config, flow_of, with_backend_defaults
    from quantviz.loading import load_model
    from quantviz.pipeline import Pipeline, StageEvent

    as_given = config_from_args(args)
    try:
        config, applied = with_backend_defaults(as_given, given_fields(args))
        flow = flow_of(config)
        require_backend(config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    # a flow that builds its own model is run as `quantviz run FLOW ...` (export_llm: --llm-config FILE names it)
    builders = [f for f in (flow, FLOWS.get(args.model)) if f is not None and f.own_model is not None]
    if builders:
        if builders[0] is not flow or args.model != flow.name:
            raise UsageError(f"an {builders[0].name} configuration names its own model: {builders[0].own_model.usage}")
        spec = flow.own_model.build(config)
    else:
        spec = load_model(args.model)
    measured = flow.own_model.measured_on if flow.own_model is not None else \
        evaluation_data(spec, config, flow.calibrates(config)).describe()
    print(f"quantviz: {spec.name}, {describe_config(config)}; figures measured on {measured}", flush=True)
    if applied:  # the values the backend needs (Backend.defaults), said before anything runs
        print(f"  {needs_line(config, applied)}", flush=True)
    total = flow.index(config.until) + 1

    def on_event(event: StageEvent) -> None:
        if event.kind == "start":
            print(f"  [{flow.index(event.stage) + 1:2d}/{total}] {event.stage:<10}", end="", flush=True)
        elif event.kind == "end" and event.result is not None:
            r = event.result
            if r.ok:
                timed = "" if r.timed_by == "quantviz" else f" ({r.timed_by}'s own figure)"
                counts = r.graph.kind_counts() if r.graph else {}
                q, dq = counts.get("quantize", 0), counts.get("dequantize", 0)
                extra = f"{len(r.graph.nodes)} nodes, {q} q, {dq} dq, {len(r.graph.patterns)} patterns" \
                    if r.graph else "; ".join(r.notes)
                print(f" ok   {r.seconds:6.2f}s{timed}  {extra}", flush=True)
            else:
                print(f" FAILED {r.seconds:6.2f}s", flush=True)

    # the config as given: the pipeline applies the same defaults and notes each on the stage that reads it
    return Pipeline(spec, as_given, on_event=on_event, explicit=given_fields(args))


def _finish(pipe, model_ref: str) -> int:
    """Print the numerics and, for a failed stage, one paragraph on stderr; the exit code."""
    numerics = pipe.numerics()
    if numerics:  # a RunNumerics: a mapping of the measured figures
        parts = [f"{k.removesuffix('_sqnr_db').replace('_vs_', ' vs ')} {v:.1f} dB"
                 for k, v in numerics.items() if k.endswith("_sqnr_db")]
        print("  SQNR: " + ", ".join(parts))
        if "float_accuracy" in numerics and "runtime_accuracy" in numerics:
            dtype = pipe.flow.precision(pipe.config).activations
            print(f"  accuracy: float {numerics['float_accuracy']:.2%}, {dtype} runtime "
                  f"{numerics['runtime_accuracy']:.2%}")
    run = pipe.result_of("runtime")
    if run is not None and run.ok:
        print("  " + run.artifact.agreement())  # runtime vs reference: exact, or drift with its size
        if run.artifact.language is not None:
            for line in run.artifact.language.notes():
                print("  " + line)
        for method in run.artifact.methods:  # a model shipped with more methods: each one's figures
            print("  " + method.line())
    failed = pipe.failed
    if failed is not None and failed.error is not None:
        err = failed.error
        lines = [f"quantviz: stage '{err.stage}' failed: {err.message}. Hint: {err.hint}"]
        if err.site is not None:
            lines.append(f"  failing node: {err.site.describe()}")
        if err.causes and err.causes[-1] not in err.message:
            lines.append(f"  cause: {err.causes[-1]}")
        logged = [line for line in err.log if line.startswith(("ERROR", "CRITICAL"))][-3:]
        lines += [f"  logged: {line}" for line in logged]
        if err.fix:
            try:
                flags = config_flags(pipe.config.with_changes(**err.fix))
            except (ConfigError, TypeError):  # a fix naming no valid config: print none
                flags = None
            if flags is not None:
                lines.append(f"  try: quantviz run {model_ref} {flags}".rstrip())
        print("\n".join(lines), file=sys.stderr)
        return 2
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from quantviz.outputs import write_outputs

    pipe = run_pipeline(args)
    try:
        pipe.run()
    except KeyboardInterrupt:
        write_outputs(pipe, args.out, svg=False, model_explorer=False)  # keep what finished, fast
        raise
    timing, latency = _time(pipe, args)
    data = write_outputs(pipe, args.out, svg=not args.no_svg, extra={"latency": latency})
    print(f"  wrote {args.out}/summary.json" + (f", {args.out}/model.pte" if "pte" in data["artifacts"] else ""))
    if "pte" in data["artifacts"]:
        from quantviz.timing.outputs import write_device_files, write_latency, write_latency_graph

        written = write_device_files(pipe, args.out)
        if timing is not None:
            written += [write_latency(timing, args.out).name,
                        *write_latency_graph(pipe, timing, args.out, svg=not args.no_svg)]
        print(f"  wrote {', '.join(w if w.startswith('(') else f'{args.out}/{w}' for w in written)}")
    return _finish(pipe, args.model)


def _time(pipe, args: argparse.Namespace):
    """Time the finished pipeline's program (``--repeat``); print its lines; (timing or None, summary's latency)."""
    from quantviz.timing.outputs import measure_for_summary

    timing, latency = measure_for_summary(pipe, args.repeat, args.threads, with_float=not args.no_float_timing)
    if timing is not None:
        for line in timing.report.lines():
            print(f"  {line}")
        if timing.float_error:
            print(f"  {timing.float_error}")
    elif args.repeat > 0 and pipe.results.get("run") is not None and pipe.results["run"].ok:
        print(f"  latency: {latency['reason']}")
    return timing, latency


def cmd_why(args: argparse.Namespace) -> int:
    import json

    from quantviz.why.ledger import build_ledger

    pipe = run_pipeline(args)
    # the ledger needs convert, delegate and fuse; emit and run add only the measured costs (--repeat)
    pipe.run(until=None if args.repeat > 0 else "fuse")
    failed = pipe.failed
    if failed is not None:
        return _finish(pipe, args.model)
    ledger = build_ledger(pipe)
    if args.repeat > 0:
        from quantviz.timing.ledger_costs import attach_costs
        from quantviz.timing.outputs import measure_for_summary

        timing, latency = measure_for_summary(pipe, args.repeat, args.threads, with_float=False)
        if timing is None:
            print(f"  costs: {latency['reason']}")
        else:
            attach_costs(ledger, timing)
            print(f"  costs measured over {timing.report.profile.describe()}; run {timing.report.total.text()}")
    print(ledger.table())
    print("  " + ", ".join(f"{n} {fate}" for fate, n in ledger.counts().items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(ledger.to_dict(), indent=2))
    print(f"  wrote {args.out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from quantviz.report import build_report

    pipe = run_pipeline(args)
    try:
        pipe.run()
    finally:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(build_report(pipe))
    print(f"  wrote {args.out}")
    return _finish(pipe, args.model)


def cmd_compare(args: argparse.Namespace) -> int:
    from quantviz.numerics.compare import compare

    pipe = run_pipeline(args)
    pipe.run()
    code = _finish(pipe, args.model)

    def progress(fraction: float, text: str) -> None:
        print(f"  numerics {fraction:4.0%}  {text}", flush=True)

    report = compare(pipe, sensitivity_layers=args.sensitivity, progress=progress, taps=not args.no_taps)
    written = report.write(args.out)
    timing, _ = _time(pipe, args)
    if timing is not None:
        from quantviz.timing.outputs import write_latency

        written.append(write_latency(timing, args.out))
    for line in report.summary_lines():
        print(f"  {line}")
    print(f"  wrote {', '.join(str(p) for p in written)}")
    if args.fail_below_sqnr is not None:
        runtime = report.metric(report.main_data(), "float", "runtime")
        if runtime is None:
            print(f"quantviz: no runtime-vs-float SQNR to check against {args.fail_below_sqnr} dB "
                  f"(runtime: {report.level('runtime').text})", file=sys.stderr)
            return 3
        if runtime < args.fail_below_sqnr:
            print(f"quantviz: runtime-vs-float SQNR {runtime:.1f} dB is below {args.fail_below_sqnr} dB",
                  file=sys.stderr)
            return 3
    if args.max_ppl_increase is not None:
        return max(code, _check_ppl(pipe.numerics(), args.max_ppl_increase))
    return code


def _check_ppl(numerics: dict, limit: float) -> int:
    """3 (and why, on stderr) when the runtime's perplexity is more than ``limit`` percent above float's, or there
    is no perplexity to check; else 0."""
    up = numerics.get("runtime_perplexity_increase_pct")
    if up is None:
        print(f"quantviz: no runtime perplexity to check against +{limit:g}% (the model is no language model with "
              "held-out text, or the run stage did not run)", file=sys.stderr)
        return 3
    if up > limit:
        print(f"quantviz: the runtime's perplexity {numerics['runtime_perplexity']:.3f} is {up:.1f}% above the float "
              f"model's {numerics['float_perplexity']:.3f}, more than {limit:g}%", file=sys.stderr)
        return 3
    print(f"  runtime perplexity {numerics['runtime_perplexity']:.3f}: {up:+.1f}% against float, within {limit:g}%")
    return 0


def cmd_device(args: argparse.Namespace) -> int:
    """Place a device's ETDump on a run's stages; exit 0, or 1 with the cause in one line."""
    import json

    from quantviz.timing.device import DeviceInputError, read_device_run

    try:
        found = read_device_run(args.dir, args.etdump, args.debug_buffer)
    except DeviceInputError as exc:
        raise UsageError(str(exc)) from None
    for line in found.lines():
        print(f"  {line}")
    out = args.out or args.dir / "device.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(found.to_dict(), indent=1))
    print(f"  wrote {out}")
    return 0


def cmd_backends(args: argparse.Namespace) -> int:
    """Every installed backend on one model; a table on stdout, CSV/JSON/HTML in --out. Exit 0 (a backend that fails is
    a row too), 1 bad arguments."""
    from quantviz.backend_table import compare_backends, installed_backends, table_lines, write_backend_table
    from quantviz.backends import BACKENDS
    from quantviz.loading import load_model

    names = [b.strip() for b in args.backends.split(",")] if args.backends else installed_backends()
    unknown = [b for b in names if b not in BACKENDS]
    if unknown:
        raise UsageError(f"unknown backend(s) {', '.join(unknown)}: {', '.join(BACKENDS)}")
    missing = {b: BACKENDS[b].missing()[0].pip for b in names if BACKENDS[b].missing()}
    for b, pip in missing.items():
        print(f"quantviz: backend {b} is not installed ({pip}); left out", file=sys.stderr)
    names = [b for b in names if b not in missing]
    load_model(args.model)  # a bad reference is exit 1 before anything runs
    base = PipelineConfig(flow="pt2e", per_channel=not args.per_tensor, held_out=args.held_out)
    print(f"quantviz backends: {args.model} on {', '.join(names)}", flush=True)

    def progress(row, done: int, total: int) -> None:
        state = "ok" if row.ok else f"FAILED at {row.failed_stage}"
        print(f"  [{done}/{total}] {row.backend:<9} {state:<22} {row.seconds:6.1f}s  {row.numbers[:70]}", flush=True)

    rows = compare_backends(args.model, names, base, ray=args.ray, address=args.address, progress=progress)
    print("\n".join(table_lines(rows)))
    written = write_backend_table(rows, args.out)
    print(f"  wrote {', '.join(str(p) for p in written)}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run every (model, configuration) cell as a Ray task; one line per finished cell; write the results; gate
    against a baseline. Exit 0 (failed cells are results too), 1 bad arguments or no Ray, 3 the gate failed."""
    from quantviz.sweep.grid import build_grid, values_from_args
    from quantviz.sweep.ray_runner import CELL_MEMORY_GIB, RayMissing, run_sweep
    from quantviz.sweep.results import gate, load_sweep, write_results

    try:
        for model in args.models:
            if not model.startswith("sample:"):
                path = model if model.endswith(".pt2") else model.rpartition(":")[0]
                if not path or not (path.endswith(".py") or path.endswith(".pt2")):
                    raise UsageError(f"cannot read model reference {model!r}: use sample:NAME, path/to/file.py:"
                                     "factory or path/to/program.pt2")
                if not Path(path).is_file():
                    raise UsageError(f"the file {path!r} does not exist")
        if args.baseline is not None and not (args.baseline / "sweep.json" if args.baseline.is_dir()
                                              else args.baseline).is_file():
            raise UsageError(f"no baseline sweep.json at {str(args.baseline)!r}")
        cells = build_grid(args.models, values_from_args(args))
    except (UsageError, ConfigError) as exc:
        print(f"quantviz: {exc}", file=sys.stderr)
        return 1
    width = max(len(f"{c.model} [{c.label}]") for c in cells)
    print(f"quantviz sweep: {len(cells)} cell(s) ({len(dict.fromkeys(args.models))} model(s) x "
          f"{len(cells) // len(dict.fromkeys(args.models))} configuration(s)) on Ray", flush=True)

    def on_cell(r, done: int, total: int) -> None:
        name = f"{r.model} [{r.label}]"
        if r.ok:
            db = r.sqnr_db
            what = f"ok      SQNR {db:6.1f} dB" if db is not None else "ok"
        else:
            what = f"{'CRASHED' if r.crashed else 'FAILED '} at {r.failed_stage or '?'}: " + \
                " ".join(r.cause.split())[:100]
        rss = f"{r.peak_rss_mb:5.0f} MB" if r.peak_rss_mb else "    ? MB"
        print(f"  [{done:{len(str(total))}d}/{total}] {name:<{width}}  {r.seconds:6.1f}s {rss}  {what}", flush=True)

    def on_layers(r) -> None:
        top = r.sensitivity[0] if r.sensitivity else None
        if top is not None:
            print(f"      sensitivity {r.model} [{r.label}]: {len(r.sensitivity)} layer(s), most sensitive "
                  f"{top['layer']} ({top['gain_db']:+.1f} dB kept float)", flush=True)

    try:
        sweep = run_sweep(cells, sensitivity=args.sensitivity, address=args.address, num_cpus=args.num_cpus,
                          cell_memory_gib=args.cell_memory or CELL_MEMORY_GIB, on_cell=on_cell, on_layers=on_layers,
                          fresh_process=args.fresh_process)
    except RayMissing as exc:
        print(f"quantviz: {exc}", file=sys.stderr)
        return 1
    except ConnectionError as exc:  # --address: no cluster there, or it wants Ray's token authentication
        print(f"quantviz: cannot join the Ray cluster at {args.address}: {str(exc).splitlines()[0]}. Hint: is "
              "`ray start --head` running there? A cluster started by Ray 2.60's `ray start` uses token "
              "authentication: set RAY_AUTH_MODE=token and give this machine the head's ~/.ray/auth_token",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nquantviz: sweep interrupted; nothing written", file=sys.stderr)
        return 130
    e = sweep.engine
    ok = sum(c.ok for c in sweep.cells)
    print(f"  {ok}/{len(sweep.cells)} ok; Ray {e['ray_version']} ({e['address']}, {e['cluster_cpus']} CPUs), "
          f"start-up {e['ray_init_seconds']:.1f}s, wall {e['wall_seconds']:.1f}s")
    written = write_results(sweep, args.out)
    print(f"  wrote {', '.join(str(p) for p in written)}")
    if args.baseline is not None:
        regressions = gate(load_sweep(args.baseline), sweep, args.max_drop_db)
        if regressions:
            print(f"quantviz: {len(regressions)} cell(s) regressed against {args.baseline} "
                  f"(max drop {args.max_drop_db:g} dB):", file=sys.stderr)
            for r in regressions:
                print(f"  {r.line()}", file=sys.stderr)
            return 3
        print(f"  baseline {args.baseline}: no cell dropped more than {args.max_drop_db:g} dB or newly fails")
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    """Search for the smallest config change that meets the target; one line per trial as it finishes; write the
    results. Exit 0 met, 3 not met within the budget, 1 bad arguments, a model that cannot be built, or
    --max-accuracy-drop without labelled evaluation data. On Ray this process imports no torch until the
    workers are done (they build the model; the first warm one reports what the driver needs)."""
    from quantviz.recover.progress import Ended, ProgressLog, Started, TrialDone
    from quantviz.recover.runner import make_evaluator, recover
    from quantviz.recover.trial import Target
    from quantviz.sweep.actors import WorkersKeepDying
    from quantviz.sweep.ray_setup import RayMissing

    from quantviz.backends import backend_name
    from quantviz.flows import with_backend_defaults

    given = given_fields(args)
    try:  # the base as it runs: the backend's defaults for what the user did not set (the trials keep both)
        config, applied = with_backend_defaults(config_from_args(args), given)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if config.until != "run":
        raise UsageError("recover measures every trial in the runtime: leave --until at run")
    if args.budget < 1:
        raise UsageError("--budget must be at least 1")
    target = Target("sqnr", args.target_sqnr, args.max_latency_ms) if args.target_sqnr is not None else \
        Target("ppl_increase", args.max_ppl_increase, args.max_latency_ms) if args.max_ppl_increase is not None \
        else Target("accuracy_drop", args.max_accuracy_drop, args.max_latency_ms)
    print(f"quantviz recover: {args.model} {config_flags(config) or '(defaults)'}; target {target.describe()}; "
          + ("trials in this process" if args.in_process else "trials on warm Ray workers"), flush=True)
    if applied:
        print(f"  {needs_line(config, applied)}", flush=True)
    try:
        evaluator = make_evaluator(args.model, config, args.budget, in_process=args.in_process,
                                   workers=args.workers, address=args.address, num_cpus=args.num_cpus,
                                   explicit=given)
    except RayMissing as exc:
        raise UsageError(f"{exc}; or run the trials here with --in-process") from None
    except ConnectionError as exc:
        raise UsageError(f"cannot join the Ray cluster at {args.address}: {str(exc).splitlines()[0]}") from None
    try:
        probe = evaluator.probe()
        if probe.error:
            raise UsageError(f"cannot build {args.model}: {probe.error}")
        if target.kind == "accuracy_drop" and not probe.labelled:
            raise UsageError(f"--max-accuracy-drop needs labelled evaluation data, and {probe.model} has none "
                             f"({probe.data}): give the factory's eval_batches labels, or use --target-sqnr DB")
        if target.kind == "ppl_increase" and not probe.language_model:
            raise UsageError(f"--max-ppl-increase needs a language model with held-out text, and {probe.model} has "
                             "none: give the factory's ModelSpec a language_model (LanguageModelTask) and eval_batches "
                             "whose labels are the next tokens, or use --target-sqnr DB")
        print(f"  measured on {probe.data}", flush=True)
        print(f"  {len(probe.candidates)} candidate(s) declared by the {config.flow} flow and the "
              f"{backend_name(config)} backend: " + (", ".join(c.id for c in probe.candidates) or "none"), flush=True)
        width = max([len(c.id) for c in probe.candidates] + [24]) + 6
        progress = ProgressLog(args.out / "progress.jsonl")
        progress.write(Started(args.model, target, args.budget, probe.data, list(probe.candidates)))

        def on_trial(t, done: int, total: int) -> None:
            progress.write(TrialDone(done, total, target.met(t), t))
            if t.ok:
                what = f"{target.reached(t):>14}  {'meets' if target.met(t) else '     '}  .pte {t.pte_bytes:>9,} B"
                if t.latency_ms is not None:
                    what += f"  {t.latency_ms:8.3f} ms"
            else:
                what = f"{'CRASHED' if t.crashed else 'FAILED'}: " + " ".join(t.error.split())[:100]
            reused = f"  (reused {', '.join(t.reused)})" if t.reused else ""
            print(f"  [{done:2d}/{total}] {t.phase:<6} {t.key:<{width}}  {what}  {t.seconds:6.1f}s{reused}",
                  flush=True)

        evaluator.on_trial = on_trial
        found = recover(args.model, config, target, args.budget, candidates=probe.candidates, evaluator=evaluator,
                        explicit=given)
    except WorkersKeepDying as exc:
        raise UsageError(f"{exc}; try --in-process to see the error in this process") from None
    finally:
        evaluator.close()
    from quantviz.recover.results import summary_lines, write_results

    for line in summary_lines(found, args.model):
        print(f"  {line}")
    written = write_results(found, args.out, args.model)
    progress.write(Ended(found.met, found.winner.key if found.winner else None))
    print(f"  wrote {', '.join(str(p) for p in [*written, progress.path])}")
    return 0 if found.met else 3


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse exits with 2 on bad flags; remapped below
    if args.command == "sweep":
        return cmd_sweep(args)  # the driver needs no torch (the workers import it): skip _quiet_libraries
    from quantviz.errors import LoadError

    if args.command == "recover" and not args.in_process:  # likewise: the workers build the model
        try:
            return cmd_recover(args)
        except (UsageError, LoadError) as exc:
            print(f"quantviz: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nquantviz: recover interrupted; nothing written", file=sys.stderr)
            return 130
    _quiet_libraries()

    try:
        if args.command == "models":
            return cmd_models()
        if args.command == "recipes":
            return cmd_recipes()
        if args.command == "stages":
            return cmd_stages(args.flow)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "why":
            return cmd_why(args)
        if args.command == "compare":
            return cmd_compare(args)
        if args.command == "backends":
            return cmd_backends(args)
        if args.command == "device":
            return cmd_device(args)
        if args.command == "recover":
            return cmd_recover(args)
        return cmd_run(args)
    except (UsageError, LoadError) as exc:
        print(f"quantviz: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nquantviz: interrupted; the stages that finished are in the output folder", file=sys.stderr)
        return 130


def entry() -> None:
    try:
        code = main()
    except SystemExit as exc:  # argparse: bad arguments are exit code 1 in quantviz's contract
        code = 1 if exc.code == 2 else int(exc.code or 0)
    sys.exit(code)


if __name__ == "__main__":
    entry()
