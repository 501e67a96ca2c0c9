"""Benchmark: the zoo on every backend that lowers here, quantviz against the bare calls of each backend, in one
process.

    .venv/bin/python bench/backends.py                                   # the default models, every backend
    .venv/bin/python bench/backends.py --models sample:conv_add --backends arm-tosa,openvino

Prints the zoo x backend table of docs/backends.md (bare ok?, quantviz ok?, delegated share, SQNR where this machine
gives numbers, the cause where not ok) and every case where the bare calls succeed and quantviz does not; writes
bench/results/backends.json. Seconds are one run each, on whatever else the machine is doing.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

from quantviz import load_model  # noqa: E402
from quantviz.backend_table import backend_config, installed_backends, row_of  # noqa: E402
from quantviz.bare_flow import run_bare  # noqa: E402
from quantviz.config import PipelineConfig  # noqa: E402
from quantviz.pipeline import Pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["sample:conv_add", "sample:mobilenet_v2", "sample:zoo_inverted_residual", "sample:zoo_levit",
          "sample:zoo_convnext", "sample:zoo_vit"]


def db(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return "∞" if x == math.inf else f"{x:.1f}"


def pair(model: str, backend: str) -> dict:
    """One model on one backend: the bare calls, then quantviz, then quantviz with the fix it offers (if any)."""
    config = backend_config(PipelineConfig(flow="pt2e", per_channel=True), backend)
    t0 = time.perf_counter()
    bare = run_bare(load_model(model), config)
    bare_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pipe = Pipeline(load_model(model), config).run()
    row = row_of(pipe, model, time.perf_counter() - t0)
    fixed, fixed_row = None, None
    if not pipe.ok and pipe.failed.error.fix:  # the remedy quantviz offers, applied as the user would
        fixed = config.with_changes(**pipe.failed.error.fix)
        t0 = time.perf_counter()
        again = Pipeline(load_model(model), fixed).run()
        fixed_row = row_of(again, model, time.perf_counter() - t0)
    return {"model": model, "backend": backend, "bare_ok": bare.ok,
            "bare_failure": "" if bare.ok else f"{bare.failed_step}: {bare.error}", "bare_seconds": bare_s,
            "quantviz": row.to_dict(), "remedy": fixed.to_dict() if fixed else None,
            "with_remedy": fixed_row.to_dict() if fixed_row else None}


def crashed(model: str, backend: str, code: int) -> dict:
    """A pair whose process died (the runtime aborts on some programs): recorded, the others go on."""
    row = {"ok": False, "failed_stage": "?", "cause": f"the process died (exit {code})", "delegates": 0,
           "delegated_share": 0.0, "float_vs_backend_sqnr_db": None, "reference_vs_backend_sqnr_db": None,
           "numbers": ""}
    return {"model": model, "backend": backend, "bare_ok": False, "bare_failure": f"process died (exit {code})",
            "bare_seconds": 0.0, "quantviz": row, "remedy": None, "with_remedy": None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--backends", default=",".join(b for b in installed_backends() if b != "portable"))
    parser.add_argument("--pair", nargs=2, metavar=("MODEL", "BACKEND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pair:  # one pair, in this (fresh) process
        print("RESULT " + json.dumps(pair(*args.pair), default=str))
        return 0
    backends = [b for b in args.backends.split(",") if b]
    rows, regressions = [], []
    for model in args.models:
        for backend in backends:  # each pair in its own process: a runtime abort loses only that pair
            proc = subprocess.run([sys.executable, __file__, "--pair", model, backend], capture_output=True, text=True)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            entry = json.loads(line[7:]) if line else crashed(model, backend, proc.returncode)
            rows.append(entry)
            row, fixed_row = entry["quantviz"], entry["with_remedy"]
            if entry["bare_ok"] and not row["ok"]:
                regressions.append(entry)
            print(f"# {model:<30} {backend:<9} bare {'ok' if entry['bare_ok'] else '✗':<3} quantviz "
                  f"{'ok' if row['ok'] else '✗ ' + row['failed_stage']:<14} {entry['bare_seconds']:6.1f}s / "
                  f"{row.get('seconds', 0):6.1f}s" + (f"; with the offered fix: "
                                                     f"{'ok' if fixed_row['ok'] else '✗ ' + fixed_row['failed_stage']}"
                                                     if fixed_row else ""), flush=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "backends.json").write_text(json.dumps(rows, indent=1, default=str))
    print()
    print("| model | backend | bare | quantviz | delegated | SQNR vs float | vs own reference | numbers from |")
    print("|---|---|---|---|---|---|---|---|")
    for e in rows:
        q = e["with_remedy"] if e["with_remedy"] and e["with_remedy"]["ok"] else e["quantviz"]
        fixed = " (with the offered fix)" if q is e["with_remedy"] else ""
        quantviz = ("ok" + fixed) if q["ok"] else f"✗ {q['failed_stage']}: {q['cause'][:90]}"
        bare = "ok" if e["bare_ok"] else f"✗ {e['bare_failure'][:70]}"
        print(f"| {e['model'].removeprefix('sample:')} | {e['backend']} | {bare} | {quantviz} | "
              f"{q['delegates']} ({q['delegated_share']:.0%}) | {db(q['float_vs_backend_sqnr_db'])} | "
              f"{db(q['reference_vs_backend_sqnr_db'])} | {q['numbers'].split(' (')[0][:40]} |")
    print()
    print(f"bare calls succeed and quantviz does not: {len(regressions)} case(s)")
    for e in regressions:
        print(f"- {e['model']}, {e['backend']}: {e['quantviz']['failed_stage']}: {e['quantviz']['cause'][:200]}")
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
