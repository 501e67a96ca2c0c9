"""Benchmark: the zoo on every backend that lowers here, quantviz against the bare calls of each backend, in one
process.

    .venv/bin/python bench/backends.py                                   # the default models, every backend
    .venv/bin/python bench/backends.py --config pt2e                     # --flow pt2e --per-channel on each
    .venv/bin/python bench/backends.py --models sample:conv_add --backends arm-tosa,openvino
    .venv/bin/python bench/backends.py --update --models sample:zoo_vit --backends openvino   # re-run some pairs,
                                                                    # keep the other rows of the results file

``--config defaults`` (the default) runs each backend with ``--backend NAME`` and nothing else, as
``quantviz run MODEL --backend NAME`` does: PipelineConfig's defaults with the backend's declared ones applied
(``Backend.defaults``, on both sides; the table shows the flags that ran). ``--config pt2e`` runs
``--flow pt2e --per-channel --backend NAME`` with the backend's own options (``backend_config``).

Prints the model x backend table of docs/backends.md (bare ok?, quantviz ok?, delegated share, SQNR where this
machine gives numbers, the cause where not ok) and every case where the bare calls succeed and quantviz does not;
writes bench/results/backends.json (``--config pt2e``) or backends_defaults.json. Seconds are one run each, on
whatever else the machine is doing.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

from quantviz import load_model  # noqa: E402
from quantviz.backend_table import backend_config, installed_backends, row_of  # noqa: E402
from quantviz.bare_flow import run_bare  # noqa: E402
from quantviz.parity import bare_failure  # noqa: E402
from quantviz.config import PipelineConfig, config_flags  # noqa: E402
from quantviz.pipeline import Pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["sample:conv_add", "sample:mobilenet_v2", "sample:zoo_inverted_residual", "sample:zoo_levit",
          "sample:zoo_convnext", "sample:zoo_vit"]
RESULTS = {"pt2e": "backends.json", "defaults": "backends_defaults.json"}


def config_for(kind: str, backend: str) -> PipelineConfig:
    """The configuration a pair runs: the CLI's defaults for ``backend`` (its declared defaults are applied by the
    pipeline and the bare calls alike), or pt2e with per-channel weights and the backend's own options."""
    if kind == "defaults":
        return PipelineConfig(backend=backend)
    return backend_config(PipelineConfig(flow="pt2e", per_channel=True), backend)


def db(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return "∞" if x == math.inf else f"{x:.1f}"


def pair(model: str, backend: str, kind: str) -> dict:
    """One model on one backend: the bare calls, then quantviz, then quantviz with the fix it offers (if any)."""
    config = config_for(kind, backend)
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
    return {"model": model, "backend": backend, "bare_ok": bare.ok, "bare_failure": bare_failure(bare),
            "bare_seconds": bare_s, "config": kind, "flags": row.config,
            "backend_defaults": config_flags(pipe.config, config) if pipe.backend_defaults else "",
            "quantviz": row.to_dict(), "remedy": fixed.to_dict() if fixed else None,
            "with_remedy": fixed_row.to_dict() if fixed_row else None}


def crashed(model: str, backend: str, kind: str, code: int) -> dict:
    """A pair whose process died (the runtime aborts on some programs): recorded, the others go on."""
    row = {"ok": False, "failed_stage": "?", "cause": f"the process died (exit {code})", "delegates": 0,
           "delegated_share": 0.0, "float_vs_backend_sqnr_db": None, "reference_vs_backend_sqnr_db": None,
           "numbers": ""}
    return {"model": model, "backend": backend, "bare_ok": False, "bare_failure": f"process died (exit {code})",
            "bare_seconds": 0.0, "config": kind, "flags": config_flags(config_for(kind, backend)),
            "backend_defaults": "", "quantviz": row, "remedy": None, "with_remedy": None}


def remedy_flags(entry: dict) -> str:
    """The flags the offered fix adds to the pair's configuration (long lists shortened)."""
    base = config_for(entry.get("config", "pt2e"), entry["backend"])
    fixed = PipelineConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in entry["remedy"].items()})
    flags = config_flags(fixed, base)
    skipped = flags.count("--skip-module")
    return flags if skipped < 3 else f"--skip-module ×{skipped} ({len(fixed.skip_modules)} modules)"


def short(cause: str) -> str:
    """A failure's cause in a table cell: the backend pass that failed, by name, where a pass failed."""
    passed = re.search(r"running the '(\w+)' pass", cause)
    if passed:
        inner = ": call_module is not supported (the _guards_fn submodule)" if "call_module" in cause or \
            "_guards_fn" in cause else " failed"
        return f"{cause.split(':', 1)[0]}: {passed.group(1)}{inner}"
    return cause[:90]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--backends", default=",".join(b for b in installed_backends() if b != "portable"))
    parser.add_argument("--config", choices=sorted(RESULTS), default="defaults",
                        help="defaults: --backend NAME alone, as the CLI runs it (default); pt2e: --flow pt2e "
                             "--per-channel with the backend's options")
    parser.add_argument("--update", action="store_true",
                        help="keep the rows of the results file for the pairs not run now")
    parser.add_argument("--pair", nargs=2, metavar=("MODEL", "BACKEND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pair:  # one pair, in this (fresh) process
        print("RESULT " + json.dumps(pair(*args.pair, args.config), default=str))
        return 0
    backends = [b for b in args.backends.split(",") if b]
    rows = []
    path = ROOT / "bench" / "results" / RESULTS[args.config]
    kept = json.loads(path.read_text()) if args.update and path.is_file() else []
    for model in args.models:
        for backend in backends:  # each pair in its own process: a runtime abort loses only that pair
            proc = subprocess.run([sys.executable, __file__, "--pair", model, backend, "--config", args.config],
                                  capture_output=True, text=True)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            entry = json.loads(line[7:]) if line else crashed(model, backend, args.config, proc.returncode)
            rows.append(entry)
            row, fixed_row = entry["quantviz"], entry["with_remedy"]
            print(f"# {model:<30} {backend:<9} bare {'ok' if entry['bare_ok'] else '✗':<3} quantviz "
                  f"{'ok' if row['ok'] else '✗ ' + row['failed_stage']:<14} {entry['bare_seconds']:6.1f}s / "
                  f"{row.get('seconds', 0):6.1f}s" + (f"; with the offered fix: "
                                                     f"{'ok' if fixed_row['ok'] else '✗ ' + fixed_row['failed_stage']}"
                                                     if fixed_row else ""), flush=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    now = {(e["model"], e["backend"]) for e in rows}
    rows = [next((e for e in rows if (e["model"], e["backend"]) == (k["model"], k["backend"])), k) for k in kept] \
        + [e for e in rows if (e["model"], e["backend"]) not in {(k["model"], k["backend"]) for k in kept}]
    order = [b for b in installed_backends() if b != "portable"]  # the rows of a model in the backends' order,
    models = list(dict.fromkeys(e["model"] for e in rows))       # whatever order the --update runs took
    rows.sort(key=lambda e: (models.index(e["model"]),
                             order.index(e["backend"]) if e["backend"] in order else len(order)))
    # the cases the printed table shows, kept rows included (not only the pairs run now)
    regressions = [e for e in rows if e["bare_ok"] and not e["quantviz"]["ok"]]
    path.write_text(json.dumps(rows, indent=1, default=str))
    if kept:
        print(f"\n{len(now)} pair(s) run now, {len(rows) - len(now)} kept from the last run")
    print()
    flags = args.config == "defaults"  # the flags differ per backend: show what ran
    print("| model | backend |" + (" flags that ran (declared defaults applied) |" if flags else "")
          + " bare | quantviz | delegated | SQNR vs float | vs own reference | numbers from |")
    print("|---|---|" + ("---|" if flags else "") + "---|---|---|---|---|---|")
    for e in rows:
        q = e["with_remedy"] if e["with_remedy"] and e["with_remedy"]["ok"] else e["quantviz"]
        fixed = f" with the offered `{remedy_flags(e)}`" if q is e["with_remedy"] else ""
        quantviz = ("ok" + fixed) if q["ok"] else f"✗ {q['failed_stage']}: {short(q['cause'])}"
        bare = "ok" if e["bare_ok"] else f"✗ {short(e['bare_failure'])}"
        ran = f" `{e.get('flags', '')}`" + (f" ({e['backend_defaults']} declared)" if e.get("backend_defaults")
                                            else "") + " |" if flags else ""
        figures = f"{q['delegates']} ({q['delegated_share']:.0%}) | {db(q['float_vs_backend_sqnr_db'])} | " \
                  f"{db(q['reference_vs_backend_sqnr_db'])}"
        row = e["quantviz"]
        if q is e["with_remedy"] and row["delegates"] and not q["delegates"]:
            # the offered fix delegates nothing: a diagnosis, not a remedy; the delegate's figures first
            quantviz = f"✗ {row['failed_stage']}: {short(row['cause'])[:60]}…; ok without the delegate (the " \
                       f"offered `{remedy_flags(e)}`)"
            figures = f"{row['delegates']} ({row['delegated_share']:.0%}); 0 without | " \
                      f"{db(row['float_vs_backend_sqnr_db'])} ({db(q['float_vs_backend_sqnr_db'])} without) | " \
                      f"{db(row['reference_vs_backend_sqnr_db'])} ({db(q['reference_vs_backend_sqnr_db'])} without)"
        print(f"| {e['model'].removeprefix('sample:')} | {e['backend']} |{ran} {bare} | {quantviz} | {figures} | "
              f"{q['numbers'].split(' (')[0].split(':')[0][:60]} |")
    print()
    print(f"bare calls succeed and quantviz does not: {len(regressions)} case(s)")
    for e in regressions:
        print(f"- {e['model']}, {e['backend']}: {e['quantviz']['failed_stage']}: {e['quantviz']['cause'][:200]}")
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
