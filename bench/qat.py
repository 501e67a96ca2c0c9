"""Benchmark: post-training quantization (``--flow torchao``) against quantization-aware training (``--flow qat``)
at the same configuration (8da4w, int4 weights in groups of 32, int8 per-token activations, XNNPACK) on the
``text_lm`` sample: perplexity of float, reference and runtime on the held-out text, top-1 agreement with float,
the first greedy-generation step where the runtime's token differs, the .pte size, and the flow's wall time.

    .venv/bin/python bench/qat.py                    # PTQ, QAT with 0 steps (the control), QAT with 40 steps
    .venv/bin/python bench/qat.py --steps 20 80

QAT with 0 steps converts the untrained fake-quantized model, so its weights are PTQ's: its row must equal the PTQ
row (checked; the script exits 1 otherwise). Wall time is one run each, under whatever else the machine runs (the
load is printed): it is not a speed figure. The perplexity figures do not depend on the load.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def row(name: str, pipe, seconds: float) -> dict:
    n = pipe.numerics()
    return {"config": name, "ok": pipe.ok, "float": n.get("float_perplexity"),
            "reference": n.get("reference_perplexity"),
            "runtime": n.get("runtime_perplexity"), "increase": n.get("runtime_perplexity_increase_pct"),
            "agreement": n.get("runtime_top1_agreement"), "diverges": n.get("runtime_first_divergent_step"),
            "steps": n.get("generation_steps"), "pte": len(pipe.pte_bytes() or b""), "seconds": seconds,
            "loss": pipe.results["train"].artifact.losses if "train" in pipe.results else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="*", default=[0, 40], help="QAT fine-tuning steps to run")
    parser.add_argument("--lr", type=float, default=1e-4)
    args = parser.parse_args()
    from quantviz import Pipeline, PipelineConfig, load_model

    spec = load_model("sample:text_lm")
    rows = []
    runs = [("PTQ (torchao 8da4w)", PipelineConfig(flow="torchao"))]
    runs += [(f"QAT {s} steps", PipelineConfig(flow="qat", qat_steps=s, qat_lr=args.lr)) for s in args.steps]
    for name, config in runs:
        t0 = time.perf_counter()
        pipe = Pipeline(spec, config).run()
        rows.append(row(name, pipe, time.perf_counter() - t0))
        print(f"  {name}: {'ok' if pipe.ok else pipe.failed.error}", file=sys.stderr, flush=True)
    load = os.getloadavg()
    print(f"text_lm (sample:text_lm), {spec.language_model.text}; {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (1/5/15 min); one run each\n")
    print("| config | perplexity float | reference | runtime | runtime vs float | top-1 agreement | first divergent "
          "step (of {}) | .pte (B) | wall (s) |".format(int(rows[0]["steps"] or 0)))
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if not r["ok"]:
            print(f"| {r['config']} | failed | | | | | | | {r['seconds']:.0f} |")
            continue
        div = int(r["diverges"])
        print(f"| {r['config']} | {r['float']:.3f} | {r['reference']:.3f} | {r['runtime']:.3f} | "
              f"{r['increase']:+.2f}% | "
              f"{r['agreement']:.1%} | {div if div <= r['steps'] else 'none'} | {r['pte']:,} | {r['seconds']:.0f} |")
    for r in rows:
        if r["loss"]:
            print(f"\n{r['config']}: distillation loss (KL to float) first {r['loss'][0]:.4f}, "
                  f"last {r['loss'][-1]:.4f}, lowest {min(r['loss']):.4f}")
    control = next((r for r in rows if r["config"] == "QAT 0 steps"), None)
    if control is not None and control["ok"] and rows[0]["ok"] and abs(control["runtime"] - rows[0]["runtime"]) > 1e-6:
        print(f"\nQAT with 0 steps ({control['runtime']:.6f}) differs from PTQ ({rows[0]['runtime']:.6f}): the QAT "
              "convert path does not quantize as PTQ does", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
