"""Benchmark: every zoo model through quantviz and through the bare torch/executorch calls, in one process.

    .venv/bin/python bench/zoo.py                       # every vision model, every standard configuration
    .venv/bin/python bench/zoo.py --sequence            # every sequence model, today's configurations
    .venv/bin/python bench/zoo.py --models zoo_vit --configs "pt2e + xnnpack"

Prints the README's zoo table (Markdown rows) and every case where the bare calls succeed and quantviz does not;
writes the rows to bench/results/zoo.json. Seconds are one run each (wall time of the whole flow, model loading
excluded), on whatever else the machine is doing: read them as sizes, not as a timing benchmark.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

from quantviz import load_model  # noqa: E402
from quantviz.parity import SEQUENCE_CONFIGS, STANDARD_CONFIGS, check_parity  # noqa: E402
from sample_models import SEQUENCE_ZOO, VISION_ZOO  # noqa: E402


def cell(ok: bool, failure: str) -> str:
    return "ok" if ok else f"✗ {failure.split(':')[0]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequence", action="store_true",
                        help="the sequence models under SEQUENCE_CONFIGS (zoo_llama_deep: bench/scale_decoder.py)")
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--configs", nargs="*", default=None)
    args = parser.parse_args()
    table = SEQUENCE_CONFIGS if args.sequence else STANDARD_CONFIGS
    args.models = args.models or [m for m in (SEQUENCE_ZOO if args.sequence else VISION_ZOO) if m != "zoo_llama_deep"]
    args.configs = args.configs or list(table)
    rows = []
    for model in args.models:
        for name in args.configs:
            row = check_parity(lambda: load_model(f"sample:{model}"), table[name])
            rows.append((model, name, row))
            print(f"# {model:<22} {name:<28} bare {cell(row.bare_ok, row.bare_failure):<14} "
                  f"quantviz {cell(row.quantviz_ok, row.quantviz_failure):<14} "
                  f"{row.bare_seconds:6.1f}s / {row.quantviz_seconds:6.1f}s", flush=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / ("zoo_sequence.json" if args.sequence else "zoo.json")).write_text(json.dumps([{"config_name": n, **r.to_dict()} for _, n, r in rows], indent=1,
                                             default=str))
    print()
    print("| model | nodes after convert | " + " | ".join(args.configs) + " |")
    print("|---|---|" + "---|" * len(args.configs))
    for model in args.models:
        mine = [r for m, _, r in rows if m == model]
        nodes = max(r.nodes_after_convert for r in mine)
        cells = [f"bare {cell(r.bare_ok, r.bare_failure)}, quantviz {cell(r.quantviz_ok, r.quantviz_failure)} "
                 f"({r.bare_seconds:.1f} s / {r.quantviz_seconds:.1f} s)"
                 + (f", {r.float_vs_runtime_sqnr_db:.1f} dB" if args.sequence and r.float_vs_runtime_sqnr_db
                    is not None else "") for r in mine]
        print(f"| {model} | {nodes} | " + " | ".join(cells) + " |")
    print()
    print("Failure causes:")
    for model, name, r in rows:
        if not r.bare_ok:
            print(f"- {model}, {name}, bare calls: {r.bare_failure[:300]}")
        if not r.quantviz_ok:
            print(f"- {model}, {name}, quantviz: {r.quantviz_failure[:300]}")
    print()
    regressions = [(m, n, r) for m, n, r in rows if r.regression]
    print(f"bare calls succeed and quantviz does not: {len(regressions)} case(s)")
    for model, name, r in regressions:
        print(f"- {model}, {name}: {r.quantviz_failure[:300]}")
    drift = [r.runtime_error_over_quantization_error_db for _, _, r in rows
             if r.runtime_error_over_quantization_error_db is not None]
    if drift:
        print(f"runtime error over quantization error (dB) where quantviz ran: min {min(drift):.1f}, "
              f"max {max(drift):.1f} (wrong above 10)")
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
