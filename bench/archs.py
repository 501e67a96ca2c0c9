"""Benchmark: architectures not designed for the tool, bare calls against quantviz on the same model in the same
process (issue 32). Each row runs the configuration's bare calls (``quantviz/bare_flow.py``) on a fresh model, then
quantviz's pipeline on another fresh one, and prints per side the stages that ran (ok, or the one that failed),
whether the two ``.pte`` files are the same bytes, and the float-vs-runtime SQNR per evaluation batch (for the
``hf_call`` decoders: one batch of 16 new tokens, one of 5, the same ``.pte``), plus, under the QAT flows, the
qparams check (``stages/qat_qparams.py``) and the fine-tune's first and last loss.

    .venv/bin/python bench/archs.py --models hf_call:make_llama hf_call:make_qwen3 \\
        --configs "pt2e dynamic" "pt2e static" "torchao 8da4w"
    .venv/bin/python bench/archs.py --models sample:zoo_vit sample:zoo_llama sample:zoo_inverted_residual \\
        --configs "qat 8da4w" "qat_pt2e"

``hf_call:FACTORY`` is ``sample_models/hf_call.py``'s factory (Hugging Face's calling convention with a KV cache).
Seconds are one run each under whatever else the machine runs (the load is printed): not a speed figure.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quantviz import PipelineConfig  # noqa: E402

CONFIGS = {
    "pt2e dynamic": PipelineConfig(flow="pt2e", backend="xnnpack", mode="dynamic", per_channel=True),
    "pt2e dynamic, op granularity": PipelineConfig(flow="pt2e", backend="xnnpack", mode="dynamic", per_channel=True,
                                                   delegate_granularity="op"),
    "pt2e static": PipelineConfig(flow="pt2e", backend="xnnpack", per_channel=True),
    "torchao 8da4w": PipelineConfig(flow="torchao", scheme="8da4w", group_size=32),
    "qat 8da4w": PipelineConfig(flow="qat", scheme="8da4w", group_size=32),
    "qat_pt2e": PipelineConfig(flow="qat_pt2e", backend="xnnpack"),
}


def load(ref: str):
    if ref.startswith("hf_call:"):
        import sample_models.hf_call as hf

        return getattr(hf, ref.removeprefix("hf_call:"))()
    from quantviz import load_model

    return load_model(ref)


def measure(ref: str, name: str) -> dict:
    from quantviz import Pipeline
    from quantviz.bare_flow import run_bare
    from quantviz.measure.metrics import sqnr_db
    from quantviz.model_spec import call
    from quantviz.runtime import first_output

    config = CONFIGS[name]
    spec = load(ref)
    batches = spec.comparison_batches()
    with torch_no_grad():
        floats = [first_output(call(spec.model, b)).detach() for b in batches]
    t0 = time.perf_counter()
    bare = run_bare(spec, config)
    bare_s = time.perf_counter() - t0
    spec = load(ref)
    t0 = time.perf_counter()
    pipe = Pipeline(spec, config).run()
    quantviz_s = time.perf_counter() - t0
    run = pipe.results.get("run")
    runtime = run.artifact.runtime_outputs if run is not None and run.ok else []
    pte = pipe.pte_bytes()
    convert = next((r for n, r in pipe.results.items() if n.startswith("convert_qat") and r.ok), None)
    train = pipe.results.get("train")
    check = convert.diagnostics.qat_qparams if convert is not None else None
    return {
        "model": spec.name, "config": name,
        "bare": "ok" if bare.ok else f"✗ {bare.failed_step}", "bare_error": bare.error,
        "quantviz": "ok" if pipe.ok else f"✗ {pipe.failed.name}",
        "quantviz_error": pipe.failed.error.message if pipe.failed else "",
        "same_pte": (bare.pte == pte) if bare.pte is not None and pte is not None else None,
        "pte_bytes": len(pte) if pte else None,
        "lengths": [tuple(first_output(o).shape) for o in runtime],
        "quantviz_db": [sqnr_db(f.flatten(), first_output(o).flatten()) for f, o in zip(floats, runtime)],
        "bare_db": [sqnr_db(f.flatten(), first_output(o).flatten()) for f, o in zip(floats, bare.outputs)],
        "qparams": (f"agree ({len(check.compared)})" if not check.mismatched() else
                    f"{len(check.mismatched())} of {len(check.compared)} differ, scale ≤ "
                    f"{100 * check.max_scale_rel_diff:.3f} %") if check is not None else "",
        "loss": (train.metrics.get("qat_first_loss"), train.metrics.get("qat_last_loss"))
        if train is not None and train.ok else None,
        "seconds": (round(bare_s, 1), round(quantviz_s, 1)),
    }


class torch_no_grad:
    def __enter__(self):
        import torch

        self._ctx = torch.no_grad()
        return self._ctx.__enter__()

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def _db(values: list[float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values) if values else "–"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--configs", nargs="+", default=["pt2e dynamic", "pt2e static", "torchao 8da4w"],
                        choices=list(CONFIGS))
    parser.add_argument("--json", help="also write the rows to this file (one JSON object a line)")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores", flush=True)
    rows = []
    for ref in args.models:
        for name in args.configs:
            rows.append(measure(ref, name))
            print(json.dumps(rows[-1], default=str), flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(rows[-1], default=str) + "\n")
    print()
    print("| model | config | bare | quantviz | same .pte | .pte bytes | float vs runtime dB (quantviz) | "
          "float vs runtime dB (bare) | qparams check | loss first → last | seconds bare / quantviz |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        loss = f"{r['loss'][0]:.3g} → {r['loss'][1]:.3g}" if r["loss"] else "–"
        print(f"| {r['model']} | {r['config']} | {r['bare']} | {r['quantviz']} | "
              f"{'–' if r['same_pte'] is None else 'yes' if r['same_pte'] else 'NO'} | "
              f"{format(r['pte_bytes'], ',') if r['pte_bytes'] else '–'} | {_db(r['quantviz_db'])} | {_db(r['bare_db'])} | {r['qparams'] or '–'} | "
              f"{loss} | {r['seconds'][0]} / {r['seconds'][1]} |")
    regressions = [r for r in rows if r["bare"] == "ok" and r["quantviz"] != "ok"]
    print(f"\nbare calls succeed where quantviz does not: {len(regressions) or 'none'}")
    for r in regressions:
        print(f"  {r['model']} {r['config']}: {r['quantviz_error']}")
    return 1 if regressions else 0


if __name__ == "__main__":
    raise SystemExit(main())
