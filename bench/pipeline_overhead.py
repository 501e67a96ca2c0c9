"""Benchmark: quantviz's pipeline against the same torch/executorch calls made bare.

    .venv/bin/python bench/pipeline_overhead.py                 # Markdown table, every sample, both flows
    .venv/bin/python bench/pipeline_overhead.py --samples digits_cnn mobilenet_v2 --rounds 5

Time: in one process, after a warm-up of each, the bare flow and quantviz alternate ``--rounds`` times; each
stage's best time is kept. quantviz's time per stage is wall time from its "start" to its "end" event, so the
graph snapshot, the eager check, emit's copy and run's float/reference comparison all count as its cost.
Memory: peak RSS (VmHWM) of a child process that runs one flow once (the same child code for both).
"""
from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

import torch  # noqa: E402

from quantviz import Pipeline, PipelineConfig, load_model  # noqa: E402
from quantviz.config import STAGES  # noqa: E402
from quantviz.pipeline import StageEvent  # noqa: E402


def bare_flow(spec, config: PipelineConfig) -> dict[str, float]:
    """The calls quantviz's stages make, without quantviz: seconds per stage (stops at a failing stage)."""
    import executorch.kernels.quantized  # noqa: F401
    from executorch.exir import EdgeCompileConfig, ExecutorchBackendConfig, to_edge
    from executorch.exir.backend.canonical_partitioners.duplicate_dequant_node_pass import DuplicateDequantNodePass
    from executorch.exir.passes.quant_fusion_pass import QuantFusionPass
    from executorch.extension.pybindings.portable_lib import _load_for_executorch_from_buffer
    from torch.ao.quantization.backend_config.executorch import get_executorch_backend_config
    from torch.ao.quantization.fx.custom_config import PrepareCustomConfig
    from torch.ao.quantization.quantize_fx import _convert_to_reference_decomposed_fx, prepare_fx
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from quantviz.passes.fold_weight_quantize import fold_weight_quantize
    from quantviz.passes.scalar_qparams import scalar_qparams
    from quantviz.stages.delegate import make_partitioner
    from quantviz.stages.edge import shared_dequants
    from quantviz.stages.prepare import fx_qconfig_mapping, xnnpack_quantizer

    times: dict[str, float] = {}
    state: dict = {}

    def stage(name, fn):
        t = time.perf_counter()
        fn()
        times[name] = time.perf_counter() - t

    model, inputs = spec.model, spec.example_inputs
    try:
        if config.flow == "fx":
            stage("trace", lambda: state.update(gm=torch.fx.symbolic_trace(model)))
            stage("prepare", lambda: state.update(obs=prepare_fx(
                copy.deepcopy(model).eval(), fx_qconfig_mapping(config), inputs, prepare_custom_config=PrepareCustomConfig(),
                backend_config=get_executorch_backend_config())))
        else:
            stage("trace", lambda: state.update(ep=torch.export.export(model, inputs)))
            stage("prepare", lambda: state.update(obs=prepare_pt2e(state["ep"].module(), xnnpack_quantizer(config))))

        def calibrate():
            with torch.no_grad():
                for b in spec.calibration_data(config.calibration_batches):
                    state["obs"](*b)
        stage("calibrate", calibrate)
        if config.flow == "fx":
            stage("convert", lambda: state.update(ref=_convert_to_reference_decomposed_fx(
                state["obs"], backend_config=get_executorch_backend_config())))
        else:
            stage("convert", lambda: state.update(ref=convert_pt2e(state["obs"])))
        stage("capture", lambda: state.update(aten=torch.export.export(state["ref"], inputs)))

        def edge():
            ep, _ = fold_weight_quantize(state["aten"])
            ep, _ = scalar_qparams(ep)
            shared = shared_dequants(ep)
            e = to_edge(ep, compile_config=EdgeCompileConfig(_check_ir_validity=False))
            state["edge"] = e.transform([DuplicateDequantNodePass()]) if shared else e
        stage("edge", edge)
        stage("delegate", lambda: state.update(edge=state["edge"] if config.partitioner == "none" else
                                               state["edge"].to_backend(make_partitioner(config.partitioner)[0])))
        stage("fuse", lambda: state.update(edge=state["edge"].transform([QuantFusionPass(_fix_node_meta_val=True)])
                                           if config.fusion != "none" else state["edge"]))
        stage("emit", lambda: state.update(et=state["edge"].to_executorch(ExecutorchBackendConfig())))

        def run():
            buf = state["et"].buffer
            m = _load_for_executorch_from_buffer(buf)
            for b in spec.comparison_batches():
                m.forward(tuple(b))
        stage("run", run)
    except Exception:  # noqa: BLE001 - a stage the pinned versions cannot do: compare what both did
        pass
    return times


def quantviz_flow(spec, config: PipelineConfig) -> dict[str, float]:
    starts: dict[str, float] = {}
    times: dict[str, float] = {}

    def on_event(e: StageEvent) -> None:
        if e.kind == "start":
            starts[e.stage] = time.perf_counter()
        elif e.kind == "end" and e.result is not None and e.result.ok:
            times[e.stage] = time.perf_counter() - starts[e.stage]

    pipe = Pipeline(spec, config, on_event=on_event)
    pipe.run()
    return times


def child(kind: str, sample: str, flow: str) -> None:
    spec = load_model(f"sample:{sample}")
    (bare_flow if kind == "bare" else quantviz_flow)(spec, PipelineConfig(flow=flow))
    # VmHWM, not ru_maxrss: Linux carries the parent's ru_maxrss through fork+exec into the child
    hwm_kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                  if line.startswith("VmHWM:"))
    print(json.dumps({"peak_rss_mb": hwm_kb / 1024}))


def peak_rss(kind: str, sample: str, flow: str) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", kind, sample, flow], capture_output=True, text=True,
                         timeout=1200, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def main() -> None:
    from sample_models import SAMPLES

    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", nargs="*", default=[s for s in SAMPLES if s != "not_traceable"])
    parser.add_argument("--flows", nargs="*", default=["fx", "pt2e"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "SAMPLE", "FLOW"))
    parser.add_argument("--per-stage", action="store_true", help="also print each stage's ratio")
    parser.add_argument("--rss-only", action="store_true", help="only the peak memory of each flow")
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.rss_only:
        print("| model | flow | bare peak RSS MB | quantviz peak RSS MB | RSS ratio |")
        print("|---|---|---|---|---|")
        for sample in args.samples:
            for flow in args.flows:
                rb, rq = peak_rss("bare", sample, flow), peak_rss("quantviz", sample, flow)
                print(f"| {sample} | {flow} | {rb:.0f} | {rq:.0f} | {rq / rb:.2f} |", flush=True)
        return
    print("| model | flow | stages compared | bare s | quantviz s | time ratio | most added time | "
          "bare peak RSS MB | quantviz peak RSS MB | RSS ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for sample in args.samples:
        for flow in args.flows:
            config = PipelineConfig(flow=flow)
            spec = load_model(f"sample:{sample}")
            bare_flow(spec, config), quantviz_flow(spec, config)  # warm-up: imports, kernel registration
            best_b: dict[str, float] = {}
            best_q: dict[str, float] = {}
            for _ in range(args.rounds):
                for best, fn in ((best_b, bare_flow), (best_q, quantviz_flow)):
                    for k, v in fn(load_model(f"sample:{sample}"), config).items():
                        best[k] = min(best.get(k, float("inf")), v)
            common = [s for s in STAGES if s in best_b and s in best_q]
            tb, tq = sum(best_b[s] for s in common), sum(best_q[s] for s in common)
            worst = max(common, key=lambda s: best_q[s] - best_b[s])
            rb, rq = peak_rss("bare", sample, flow), peak_rss("quantviz", sample, flow)
            print(f"| {sample} | {flow} | {common[0]}..{common[-1]} | {tb:.3f} | {tq:.3f} | {tq / tb:.2f} | "
                  f"{worst} ({best_q[worst] - best_b[worst]:+.3f} s) | {rb:.0f} | {rq:.0f} | {rq / rb:.2f} |",
                  flush=True)
            if args.per_stage:
                print("|  | per stage | " + " ".join(f"{s} {best_q[s]:.3f}/{best_b[s]:.3f}" for s in common) + " |")


if __name__ == "__main__":
    main()
