"""The quantviz command line.

    quantviz models
    quantviz stages
    quantviz run sample:digits_cnn --flow pt2e --partitioner xnnpack --out out/pt2e
    quantviz report sample:digits_cnn --out report.html
    quantviz why sample:conv_add --flow pt2e

Exit codes: 0 everything asked for succeeded; 1 bad arguments or a model that cannot be loaded;
2 a stage failed (summary.json is still written); 130 interrupted.
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from quantviz.config import DUPLICATE_DEQUANT, FLOWS, FUSIONS, MODES, PARTITIONERS, STAGES, ConfigError, PipelineConfig


class UsageError(Exception):
    """Bad arguments: exit code 1."""


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The flags shared by every command that runs the pipeline; one per PipelineConfig field."""
    d = PipelineConfig()
    p.add_argument("model", help="sample:NAME, path/to/file.py:factory, or path/to/program.pt2")
    p.add_argument("--flow", choices=FLOWS, default=d.flow, help="fx (prepare_fx) or pt2e (prepare_pt2e)")
    p.add_argument("--mode", choices=MODES, default=d.mode)
    p.add_argument("--per-channel", action="store_true", help="per-channel weight quantization")
    p.add_argument("--partitioner", choices=PARTITIONERS, default=d.partitioner)
    p.add_argument("--fusion", choices=FUSIONS, default=d.fusion)
    p.add_argument("--skip-module", action="append", default=[], metavar="NAME",
                   help="leave this submodule untraced and unquantized (repeatable)")
    p.add_argument("--calibration-batches", type=int, default=d.calibration_batches, metavar="N")
    p.add_argument("--duplicate-dequant", choices=DUPLICATE_DEQUANT, default=d.duplicate_dequant)
    p.add_argument("--until", choices=STAGES, default=d.until, metavar="STAGE",
                   help=f"last stage to run: {', '.join(STAGES)}")


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    try:
        return PipelineConfig(flow=args.flow, mode=args.mode, per_channel=args.per_channel,
                              partitioner=args.partitioner, fusion=args.fusion,
                              skip_modules=tuple(args.skip_module), calibration_batches=args.calibration_batches,
                              duplicate_dequant=args.duplicate_dequant, until=args.until)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quantviz", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="list the sample models")
    sub.add_parser("stages", help="list the stages in order")
    run = sub.add_parser("run", help="run the flow and write summary.json, stage graphs and model.pte")
    add_run_options(run)
    run.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    run.add_argument("--no-svg", action="store_true", help="write DOT only, skip `dot` layout to SVG")
    why = sub.add_parser("why", help="the pattern ledger: what became of every quantized pattern, and why")
    add_run_options(why)
    why.add_argument("--out", type=Path, default=Path("why.json"), help="JSON file (default: why.json)")
    compare = sub.add_parser("compare", help="run the flow and compare float, reference, fused and runtime numerics "
                                             "(numerics.json and CSV tables)")
    add_run_options(compare)
    compare.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    compare.add_argument("--fail-below-sqnr", type=float, default=None, metavar="DB",
                         help="exit 3 when the runtime-vs-float SQNR (evaluation data) is below DB")
    compare.add_argument("--sensitivity", type=int, default=0, metavar="N",
                         help="also keep each of the first N weighted layers float in turn (default: 0, off)")
    report = sub.add_parser("report", help="run the flow and write one standalone HTML report")
    add_run_options(report)
    report.add_argument("--out", type=Path, default=Path("report.html"), help="HTML file (default: report.html)")
    return parser


def _quiet_libraries() -> None:
    """Keep library chatter (deprecation notes, optional-extension load failures) off the user's terminal."""
    import torch  # noqa: F401  torch configures its loggers on import: quiet them after that

    warnings.filterwarnings("ignore")
    for name in ("torchao", "executorch", "torch._export", "torch.export", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)


def cmd_models() -> int:
    from sample_models import SAMPLES

    width = max(map(len, SAMPLES))
    for name, desc in SAMPLES.items():
        print(f"sample:{name:<{width}}  {desc}")
    return 0


def cmd_stages() -> int:
    from quantviz.stages import STAGE_LIST

    for i, stage in enumerate(STAGE_LIST, 1):
        print(f"{i:2d}. {stage.name:<10} {stage.description}")
    return 0


def run_pipeline(args: argparse.Namespace):
    """Load the model and run the flow, printing one line a stage."""
    from quantviz.loading import load_model
    from quantviz.pipeline import Pipeline, StageEvent

    config = config_from_args(args)
    spec = load_model(args.model)
    print(f"quantviz: {spec.name}, flow {config.flow}, mode {config.mode}, partitioner {config.partitioner}, "
          f"fusion {config.fusion}", flush=True)

    def on_event(event: StageEvent) -> None:
        if event.kind == "start":
            print(f"  [{STAGES.index(event.stage) + 1:2d}/{STAGES.index(config.until) + 1}] {event.stage:<10}",
                  end="", flush=True)
        elif event.kind == "end" and event.result is not None:
            r = event.result
            if r.ok:
                counts = r.graph.kind_counts() if r.graph else {}
                q, dq = counts.get("quantize", 0), counts.get("dequantize", 0)
                extra = f"{len(r.graph.nodes)} nodes, {q} q, {dq} dq, {len(r.graph.patterns)} patterns" \
                    if r.graph else "; ".join(r.notes)
                print(f" ok   {r.seconds:6.2f}s  {extra}", flush=True)
            else:
                print(f" FAILED {r.seconds:6.2f}s", flush=True)

    return Pipeline(spec, config, on_event=on_event)


def _finish(pipe) -> int:
    """Print the numerics and, for a failed stage, one paragraph on stderr; the exit code."""
    numerics = pipe.numerics()
    if numerics:
        parts = [f"{k.removesuffix('_sqnr_db').replace('_vs_', ' vs ')} {v:.1f} dB"
                 for k, v in numerics.items() if k.endswith("_sqnr_db")]
        print("  SQNR: " + ", ".join(parts))
        if "float_accuracy" in numerics:
            print(f"  accuracy: float {numerics['float_accuracy']:.2%}, int8 runtime {numerics['runtime_accuracy']:.2%}")
    failed = pipe.failed
    if failed is not None and failed.error is not None:
        err = failed.error
        print(f"quantviz: stage '{err.stage}' failed: {err.message}. Hint: {err.hint}", file=sys.stderr)
        return 2
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from quantviz.outputs import write_outputs

    pipe = run_pipeline(args)
    try:
        pipe.run()
    except KeyboardInterrupt:
        write_outputs(pipe, args.out, svg=False)  # keep what finished; no slow layout on the way out
        raise
    data = write_outputs(pipe, args.out, svg=not args.no_svg)
    print(f"  wrote {args.out}/summary.json" + (f", {args.out}/model.pte" if "pte" in data["artifacts"] else ""))
    return _finish(pipe)


def cmd_why(args: argparse.Namespace) -> int:
    import json

    from quantviz.why.ledger import build_ledger

    pipe = run_pipeline(args)
    pipe.run(until="fuse")  # the ledger needs convert, delegate and fuse; emit and run add nothing to it
    failed = pipe.failed
    if failed is not None:
        return _finish(pipe)
    ledger = build_ledger(pipe)
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
    return _finish(pipe)


def cmd_compare(args: argparse.Namespace) -> int:
    from quantviz.numerics.compare import compare

    pipe = run_pipeline(args)
    pipe.run()
    code = _finish(pipe)

    def progress(fraction: float, text: str) -> None:
        print(f"  numerics {fraction:4.0%}  {text}", flush=True)

    report = compare(pipe, sensitivity_layers=args.sensitivity, progress=progress)
    written = report.write(args.out)
    data = "evaluation" if any(r["data"] == "evaluation" for r in report.end_to_end) else \
        (report.end_to_end[0]["data"] if report.end_to_end else "")
    for level, state in report.levels.items():
        print(f"  {level:<9} {'ok' if state == 'ok' else 'unavailable: ' + state}")
    for row in report.end_to_end:
        if row["data"] == data:
            print(f"  {row['a']} vs {row['b']}: SQNR {row['sqnr_db']:.1f} dB, cosine {row['cosine']:.5f}"
                  + (f", max {row['max_lsb']:.0f} LSB" if row.get("max_lsb") == row.get("max_lsb")
                     and row.get("max_lsb") is not None else ""))
    if report.per_node:
        worst = report.per_node[0]
        print(f"  worst node: {worst['node']} ({worst['sqnr_db']:.1f} dB float vs reference)")
    if report.kernels:
        print(f"  quantviz kernels: worst instance {report.kernels[0]['node']} "
              f"{report.kernels[0]['max_lsb']} LSB off the reference")
    ri = report.runtime_intermediates
    if ri.get("available"):
        compared = [r for r in ri["rows"] if r["status"] == "compared"]
        hidden = [r for r in ri["rows"] if r["status"].startswith("inside a delegate")]
        worst = max((r["max_abs_diff"] for r in compared), default=0.0)
        print(f"  runtime intermediates: {len(compared)} kernel call(s) compared with the fused program, "
              f"max difference {worst:g}" + (f"; {len(hidden)} op(s) inside delegates" if hidden else ""))
    else:
        print(f"  runtime intermediates: unavailable ({ri.get('reason')})")
    print(f"  wrote {', '.join(str(p) for p in written)}")
    if args.fail_below_sqnr is not None:
        runtime = report.metric(data, "float", "runtime")
        if runtime is None:
            print(f"quantviz: no runtime-vs-float SQNR to check against {args.fail_below_sqnr} dB "
                  f"(runtime: {report.levels.get('runtime')})", file=sys.stderr)
            return 3
        if runtime < args.fail_below_sqnr:
            print(f"quantviz: runtime-vs-float SQNR {runtime:.1f} dB is below {args.fail_below_sqnr} dB",
                  file=sys.stderr)
            return 3
    return code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse exits with 2 on bad flags; remapped below
    _quiet_libraries()
    from quantviz.errors import LoadError

    try:
        if args.command == "models":
            return cmd_models()
        if args.command == "stages":
            return cmd_stages()
        if args.command == "report":
            return cmd_report(args)
        if args.command == "why":
            return cmd_why(args)
        if args.command == "compare":
            return cmd_compare(args)
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
