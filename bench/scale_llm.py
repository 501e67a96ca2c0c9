"""Benchmark: SmolLM2-135M- and Qwen3-0.6B-shaped decoders (random weights) through quantviz's export_llm flow and
its torchao flow, each against the bare call a user makes with the same configuration, pair by pair in one run.

    .venv/bin/python bench/scale_llm.py --shape smollm2_135m --flow export_llm --pairs 2
    .venv/bin/python bench/scale_llm.py --shape qwen3_0_6b --flow torchao --pairs 1
    .venv/bin/python bench/scale_llm.py --shape smollm2_135m --layers 2 --pairs 1     # a smoke run, both flows
    .venv/bin/python bench/scale_llm.py --flow export_llm --layers 6 --pairs 2 --together  # sides side by side

Shapes (ExecuTorch's own params for the two models, written to ``--workdir`` with a seeded random checkpoint so
nothing is downloaded): ``smollm2_135m`` dim 576, 30 layers, 9 heads / 3 KV heads, FFN 1536, vocabulary 49,152;
``qwen3_0_6b`` dim 1024, 28 layers, 16 heads / 8 KV heads of dim 128, FFN 3072, vocabulary 151,936, q/k norm.

export_llm flow. A: ``Pipeline(llm_spec(config), config).run()`` with ``until="to_executorch"`` (source_transform, export,
pt2e_quantize, lower, to_executorch), the .pte written. B: export_llm's own entry point,
``export_llama_lib.export_llama(llm_config)`` (what ``python -m executorch.extension.llm.export.export_llm --config
FILE key=value ...`` calls after merging the configuration), which writes its .pte. Configuration: the YAML ExecuTorch
ships (llama_xnnpack.yaml for SmolLM2 with ``quantization.group_size=32``, since 576 is no multiple of its 128;
qwen3_xnnpack_q8da4w.yaml for Qwen3) with ``base.model_class``, ``base.params`` and ``base.checkpoint``.

torchao flow. The same shapes as Hugging Face-style modules (``sample_models.zoo_llama``: RMSNorm, rotary,
grouped-query attention, SwiGLU, tied head; no KV cache, 32 tokens; the Qwen3 shape has no q/k norm there).
A: ``Pipeline(spec, PipelineConfig(flow="torchao", scheme="8da4w", group_size=32, until="emit")).run()``, the .pte
written. B: ``executorch.export.export(model, samples, ExportRecipe.get_recipe(
XNNPackRecipeType.TORCHAO_INT8_DYNAMIC_ACT_INT4_WEIGHT_PER_TENSOR, group_size=32))`` and its .pte written.

Every side runs in a fresh process, A and B alternating (A B, B A, A B, ...); with ``--together`` the two sides of a
pair run at the same moment (the second started one second after the first, the order alternating), so both get
the same load on a shared machine, and the load average is sampled every 30 s. Each is timed inside its process from
model build to the .pte on disk (imports excluded); peak memory is the process's ``ru_maxrss`` at that moment. The
script prints min / median / max of each side and of the ratio A/B pair by pair, ``uptime`` before and after, the
progress events quantviz's stages sent, and the first graph's time to screen (snapshot, overview plan, DOT,
graphviz layout of the flow's first graph: export_llm's export, torchao's capture).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# ExecuTorch's params files for the two models (examples/models/{smollm2,qwen3}/*_config.json upstream; the wheel
# ships only their YAML files), and the export_llm YAML each is run with.
SHAPES = {
    "smollm2_135m": {
        "params": {"dim": 576, "ffn_dim_multiplier": 1, "hidden_dim": 1536, "n_heads": 9, "n_kv_heads": 3,
                   "n_layers": 30, "norm_eps": 1e-05, "rope_theta": 10000.0, "use_scaled_rope": False,
                   "vocab_size": 49152, "use_hf_rope": False, "attention_qkv_bias": False},
        "model_class": "smollm2", "yaml": ("llama", "llama_xnnpack.yaml"), "overrides": ("quantization.group_size=32",),
    },
    "qwen3_0_6b": {
        "params": {"dim": 1024, "ffn_dim_multiplier": 1, "hidden_dim": 3072, "n_heads": 16, "head_dim": 128,
                   "n_kv_heads": 8, "n_layers": 28, "norm_eps": 1e-06, "rope_theta": 1000000.0,
                   "use_scaled_rope": False, "vocab_size": 151936, "use_hf_rope": True, "attention_qkv_bias": False,
                   "qk_norm_before_rope": True},
        "model_class": "qwen3_0_6b", "yaml": ("qwen3", "qwen3_xnnpack_q8da4w.yaml"), "overrides": (),
    },
}
FIRST_GRAPH = {"export_llm": "export", "torchao": "capture"}


def params_of(shape: str, layers: int | None) -> dict:
    params = dict(SHAPES[shape]["params"])
    if layers:
        params["n_layers"] = layers
    return params


def prepare(shape: str, layers: int | None, workdir: Path) -> tuple[str, tuple[str, ...]]:
    """The export_llm YAML and overrides for ``shape``: its params file and a seeded random checkpoint in
    ``workdir`` (written once; export_llm would download the Hugging Face weights without a checkpoint)."""
    import torch
    from executorch.examples.models.llama.llama_transformer import construct_transformer
    from executorch.examples.models.llama.model_args import ModelArgs

    from quantviz.llm_config import shipped_llm_configs

    params = params_of(shape, layers)
    folder = workdir / f"{shape}_{params['n_layers']}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.json").write_text(json.dumps(params))
    ckpt = folder / "ckpt.pth"
    if not ckpt.exists():
        torch.manual_seed(0)
        model = construct_transformer(ModelArgs(**params, max_seq_len=128, max_context_len=128))
        # export_llm's checkpoints are bf16/fp32 state dicts without the rope buffers; the KV caches are not saved
        state = {k: v for k, v in model.state_dict().items() if "k_cache" not in k and "v_cache" not in k}
        torch.save(state, ckpt)
        del model, state
    folder_yaml, name = SHAPES[shape]["yaml"]
    yaml = next(p for p in shipped_llm_configs() if p.parts[-3:] == (folder_yaml, "config", name))
    overrides = (f"++base.model_class={SHAPES[shape]['model_class']}", f"++base.params={folder / 'params.json'}",
                 f"++base.checkpoint={ckpt}", *SHAPES[shape]["overrides"])
    return str(yaml), overrides


def torchao_spec(shape: str, layers: int | None):
    """The shape as a Hugging Face-style decoder (sample_models.zoo_llama), random weights, 32-token batches."""
    import torch

    from sample_models.zoo_common import sequence_spec, token_batches
    from sample_models.zoo_llama import LlamaConfig, LlamaForCausalLM

    p = params_of(shape, layers)
    config = LlamaConfig(vocab_size=p["vocab_size"], hidden_size=p["dim"], intermediate_size=p["hidden_dim"],
                         num_hidden_layers=p["n_layers"], num_attention_heads=p["n_heads"],
                         num_key_value_heads=p["n_kv_heads"], head_dim=p.get("head_dim"),
                         max_position_embeddings=2048, rms_norm_eps=p["norm_eps"], rope_theta=p["rope_theta"])
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    batches = token_batches(6, 1, 32, config.vocab_size, seed=1, with_mask=False)
    return sequence_spec(f"{shape}_shaped", model, batches, ("input_ids",))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def first_graph(pipe, stage: str) -> dict:
    """How long ``stage``'s graph takes to reach the screen: snapshot, overview plan and DOT, graphviz layout
    (bench/scale_decoder.py times the capture stage with it too)."""
    from quantviz.render import ViewSpec, dot_to_svg, plan_view, to_dot

    t = time.perf_counter()
    graph = pipe.results[stage].graph
    t_snap = time.perf_counter() - t
    t = time.perf_counter()
    plan = plan_view(graph, ViewSpec())
    dot = to_dot(graph, ViewSpec(), plan)
    t_plan = time.perf_counter() - t
    t = time.perf_counter()
    svg = dot_to_svg(dot)
    t_layout = time.perf_counter() - t
    return {"stage": stage, "nodes": len(graph.nodes), "snapshot_s": t_snap, "plan_and_dot_s": t_plan,
            "layout_s": t_layout, "total_s": t_snap + t_plan + t_layout, "depth": plan.depth,
            "boxes": plan.visible_count, "svg": bool(svg)}


def side_quantviz(flow: str, shape: str, layers: int | None, out: Path, llm: tuple) -> dict:
    from quantviz import Pipeline, PipelineConfig
    from quantviz.llm_config import llm_spec

    events: dict[str, list[str]] = {}

    def on_event(e) -> None:
        if e.kind == "progress":
            events.setdefault(e.stage, []).append(f"{e.fraction:.2f} {e.text}")

    t0, c0 = time.perf_counter(), time.process_time()
    if flow == "export_llm":
        config = PipelineConfig(llm_config=llm[0], llm_overrides=llm[1], until="to_executorch")
        spec = llm_spec(config)
    else:
        config = PipelineConfig(flow="torchao", scheme="8da4w", group_size=32, until="emit")
        spec = torchao_spec(shape, layers)
    pipe = Pipeline(spec, config, on_event=on_event)
    pipe.run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    out.write_bytes(pipe.pte_bytes())
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = peak_rss_mb()
    return {"seconds": seconds, "cpu_s": cpu, "peak_mb": rss, "pte_bytes": out.stat().st_size,
            "stages": {n: round(r.seconds, 1) for n, r in pipe.results.items()},
            "progress": {k: [len(v), v[:2], v[-2:]] for k, v in events.items()},
            "first_graph": first_graph(pipe, FIRST_GRAPH[flow])}


def side_bare(flow: str, shape: str, layers: int | None, out: Path, llm: tuple) -> dict:
    if flow == "export_llm":
        from executorch.examples.models.llama.export_llama_lib import export_llama

        from quantviz.llm_config import load_llm_config

        t0, c0 = time.perf_counter(), time.process_time()
        llm_config = load_llm_config(llm[0], (*llm[1], f"++export.output_name={out}"))
        export_llama(llm_config)
    else:
        from executorch.backends.xnnpack.recipes import XNNPackRecipeType
        from executorch.export import ExportRecipe, export

        t0, c0 = time.perf_counter(), time.process_time()
        spec = torchao_spec(shape, layers)
        recipe = ExportRecipe.get_recipe(XNNPackRecipeType.TORCHAO_INT8_DYNAMIC_ACT_INT4_WEIGHT_PER_TENSOR,
                                         group_size=32)
        session = export(spec.model, spec.calibration_data(4), recipe)
        out.write_bytes(session.get_pte_buffer())
    return {"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "peak_mb": peak_rss_mb(),
            "pte_bytes": out.stat().st_size}


def spread(xs: list[float], fmt: str = "{:.1f}") -> str:
    return " / ".join(fmt.format(v) for v in (min(xs), statistics.median(xs), max(xs)))


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def start_child(args, side: str, flow: str, llm: tuple) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--shape", args.shape, "--flow", flow, "--side", side,
           "--workdir", str(args.workdir), *(["--layers", str(args.layers)] if args.layers else []),
           "--llm", json.dumps(llm)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def finish_child(proc: subprocess.Popen, side: str, flow: str) -> dict:
    stdout, stderr = proc.communicate()
    line = next((x for x in stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        print(f"# {flow} {side} FAILED (exit {proc.returncode}):\n{stderr[-3000:]}", flush=True)
        return {"failed": stderr.strip().splitlines()[-1:] or ["no output"]}
    return json.loads(line[7:])


def child(args, side: str, flow: str, llm: tuple) -> dict:
    return finish_child(start_child(args, side, flow, llm), side, flow)


class LoadSampler:
    """The 1-minute load average every ``every`` seconds while a pair runs (its min and max are printed)."""

    def __init__(self, every: float = 30.0) -> None:
        import threading

        self.samples: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> str:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])
        return f"load {min(self.samples):.1f} to {max(self.samples):.1f} ({len(self.samples)} samples)"


def bench_flow(args, flow: str, llm: tuple) -> None:
    runs: dict[str, list[dict]] = {"quantviz": [], "bare": []}
    for i in range(args.pairs):
        order = ("quantviz", "bare") if i % 2 == 0 else ("bare", "quantviz")
        if args.together:  # both sides at once: the same load on both, so the wall-time ratio means something
            sampler = LoadSampler()
            procs = []
            for side in order:
                procs.append((side, start_child(args, side, flow, llm)))
                time.sleep(1.0)
            results = {side: finish_child(proc, side, flow) for side, proc in procs}
            load = sampler.stop()
            for side in order:
                runs[side].append(results[side])
                if "failed" not in results[side]:
                    r = results[side]
                    print(f"# {flow} pair {i + 1} (together, {' started first, '.join(order)}) {side:<8} "
                          f"{r['seconds']:7.1f} s (CPU {r['cpu_s']:7.1f} s) {r['peak_mb']:7.0f} MB  {load}", flush=True)
            print(f"# {uptime()}", flush=True)
        else:
            for side in order:
                result = child(args, side, flow, llm)
                runs[side].append(result)
                if "failed" not in result:
                    print(f"# {flow} pair {i + 1} {side:<8} {result['seconds']:7.1f} s (CPU {result['cpu_s']:7.1f} s) "
                          f"{result['peak_mb']:7.0f} MB  {uptime()}", flush=True)
        if i + 1 < args.pairs:
            table(args, flow, runs, i + 1)  # so far: a run cut short keeps its complete pairs
    table(args, flow, runs, args.pairs)


def table(args, flow: str, runs: dict[str, list[dict]], pairs: int) -> None:
    ok = [(a, b) for a, b in zip(runs["quantviz"], runs["bare"]) if "failed" not in a and "failed" not in b]
    bare_name = {"export_llm": "bare export_llm (export_llama(llm_config))",
                 "torchao": "bare recipe call (executorch.export.export)"}[flow]
    print(f"\n{args.shape}-shaped{f' ({args.layers} layers)' if args.layers else ''}, {flow} flow, {len(ok)} of "
          f"{pairs} pair(s) complete\n", flush=True)
    if not ok:
        return
    a, b = [x for x, _ in ok], [y for _, y in ok]
    t_ratio = [x["seconds"] / y["seconds"] for x, y in ok]
    m_ratio = [x["peak_mb"] / y["peak_mb"] for x, y in ok]
    print("| side | wall s (model build .. .pte written) min / median / max | peak RSS MB min / median / max |")
    print("|---|---|---|")
    print(f"| quantviz {flow} flow | {spread([x['seconds'] for x in a])} | {spread([x['peak_mb'] for x in a], '{:.0f}')} |")
    print(f"| {bare_name} | {spread([y['seconds'] for y in b])} | {spread([y['peak_mb'] for y in b], '{:.0f}')} |")
    c_ratio = [x["cpu_s"] / y["cpu_s"] for x, y in ok]
    print(f"| ratio quantviz / bare, pair by pair | {spread(t_ratio, '{:.2f}')} | {spread(m_ratio, '{:.2f}')} |\n")
    print(f"  CPU s (user + system, same scope): quantviz {spread([x['cpu_s'] for x in a])}, bare "
          f"{spread([y['cpu_s'] for y in b])}, ratio pair by pair {spread(c_ratio, '{:.2f}')}")
    last = a[-1]
    g = last["first_graph"]
    print(f"  .pte bytes: quantviz {last['pte_bytes']:,}, bare {b[-1]['pte_bytes']:,}")
    print(f"  quantviz stages (last run, s): {last['stages']}")
    for stage, (count, head, tail) in last["progress"].items():
        print(f"  progress in {stage}: {count} event(s), first {head}, last {tail}")
    firsts = [x["first_graph"]["total_s"] for x in a]
    print(f"  first graph ({g['stage']}, {g['nodes']} nodes): snapshot {g['snapshot_s']:.2f} s + overview plan and "
          f"DOT {g['plan_and_dot_s']:.2f} s + graphviz layout {g['layout_s']:.2f} s = {g['total_s']:.2f} s "
          f"({g['boxes']} boxes); over the runs {spread(firsts, '{:.2f}')} s\n", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=tuple(SHAPES), default="smollm2_135m")
    parser.add_argument("--flow", choices=("export_llm", "torchao", "both"), default="both")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--layers", type=int, help="fewer decoder layers (a smoke run), the widths unchanged")
    parser.add_argument("--together", action="store_true",
                        help="run the two sides of a pair at the same time (same load; two processes' memory at once)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/quantviz_scale_llm"))
    parser.add_argument("--side", choices=("quantviz", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--llm", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # one side, in this (fresh) process
        llm = tuple(json.loads(args.llm)) if args.llm else ()
        llm = (llm[0], tuple(llm[1])) if llm else ()
        out = args.workdir / f"{args.shape}_{args.flow}_{args.side}.pte"
        fn = side_quantviz if args.side == "quantviz" else side_bare
        print("RESULT " + json.dumps(fn(args.flow, args.shape, args.layers, out, llm)))
        return 0
    print(f"# start: {uptime()}", flush=True)
    args.workdir.mkdir(parents=True, exist_ok=True)  # the torchao flow writes only its .pte files there
    flows = ("export_llm", "torchao") if args.flow == "both" else (args.flow,)
    for flow in flows:
        llm = prepare(args.shape, args.layers, args.workdir) if flow == "export_llm" else ()
        bench_flow(args, flow, llm)
    print(f"# end: {uptime()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
