"""A model shipped with more than one method in one .pte (``ModelSpec.methods``): sample:prefill_decode, whose
forward is the prefill (a prompt of 2..16 tokens) and whose ``decode`` runs one token at its position with the KV
cache passed in and returned. The torchao flow exports both from the one quantized model, lowers them in one
``to_edge_transform_and_lower`` call, emits one .pte and runs each method in the runtime against the float model's
same method; pt2e, fx and the recipe flow refuse the spec at their first stage with ``--flow torchao`` as the fix,
and the fix runs on the same model. The bare calls make the same bytes."""
from __future__ import annotations

import copy

import pytest
import torch

from quantviz import Batch, PipelineConfig, load_model
from quantviz.backends.execute import program_methods, run_program
from quantviz.measure.metrics import sqnr_db
from quantviz.model_spec import Method, ModelSpec, method_module
from quantviz.workers import call_in_worker
from sample_models.prefill_decode import CACHE, DIM, PROMPT, SHORT, VOCAB

MODEL = "sample:prefill_decode"
# measured here (2-core Xeon, shared): float vs runtime 22.6 dB for forward and 22.6 dB for decode; reference vs
# runtime 44.4 and 46.4 dB (8da4w, group 32, random weights: 4-bit weights cost ~22 dB, the kernels little)
FLOAT_FLOOR_DB, REFERENCE_FLOOR_DB = 18.0, 35.0


@pytest.fixture(scope="module")
def pipe(flow):
    return flow(MODEL, flow="torchao")


def test_the_spec_names_its_methods_and_a_method_exports_by_its_own_argument_names():
    spec = load_model(MODEL)
    assert spec.method_names == ["forward", "decode"] and spec.method("decode").attribute == "decode"
    with pytest.raises(KeyError, match="its methods: forward, decode"):
        spec.method("prefill")
    assert load_model("sample:kwargs_decoder").method_names == ["forward"]  # no methods: as before
    with pytest.raises(ValueError, match="beside forward, each named once in the .pte; got decode, decode"):
        ModelSpec("twice", spec.model, spec.example_inputs, methods=(spec.method("decode"),) * 2)

    class Two(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.lin(x)

        def step(self, x, scale=None):
            return self.lin(x) * scale

    model = Two()
    seq = torch.export.Dim("seq", min=2, max=8)
    m = Method("step", (torch.randn(3, 4),), {"scale": torch.tensor(2.0)}, dynamic_shapes={"x": {0: seq},
                                                                                            "scale": None})
    ep = m.export(model)  # dynamic_shapes bound by the method's argument names, weights shared with the model
    x = torch.randn(6, 4)
    assert torch.allclose(ep.module()(x, scale=torch.tensor(2.0)), model.step(x, scale=torch.tensor(2.0)))
    assert [n for n, _ in method_module(model, "step").named_parameters()] == ["model.lin.weight", "model.lin.bias"]
    assert method_module(model, "step").model.lin is model.lin
    # a method's batch is checked against its own example, as forward's are: within the declared range, or why not
    assert m.mismatch(model, Batch((torch.randn(8, 4),), {"scale": torch.tensor(1.0)})) == ""
    assert m.mismatch(model, Batch((torch.randn(9, 4),), {"scale": torch.tensor(1.0)})) == \
        "x is (9, 4) float32, the example is (3, 4) float32; dynamic: dim 0 in [2, 8]"
    decode = spec.method("decode")
    token, pos, k, v = decode.example_inputs
    assert decode.as_spec(spec.model).input_paths() == ["token", "pos", "k_cache", "v_cache"]
    assert decode.mismatch(spec.model, (token, pos, k[:, :5], v)) == \
        f"k_cache is (1, 5, {DIM}) float32, the example is (1, {CACHE}, {DIM}) float32"


def test_the_pte_holds_both_methods_and_the_emit_stage_names_them(pipe):
    assert pipe.ok, pipe.failed and pipe.failed.error
    assert pipe.artifact("emit").methods == {"forward", "decode"}
    # read back by the ExecuTorch runtime itself (in a worker process, as the run stage loads it)
    assert call_in_worker(program_methods, pipe.pte_bytes()) == ["forward", "decode"]
    assert "the .pte holds 2 methods: forward, decode" in " ".join(pipe.results["emit"].notes)
    assert pipe.results["emit"].metrics["methods"] == 2
    assert "2 methods exported from the same quantized model: forward, decode" in pipe.results["capture"].notes[0]
    # both methods lowered in the one call, with the same partitioner: each has its delegate calls
    delegated = pipe.results["delegate"].notes[0]
    assert "in forward;" in delegated and delegated.endswith(" in decode") and " 0 in decode" not in delegated
    # the pages show forward's graph: the input is the prompt, with its dynamic length
    (ids,) = [n for n in pipe.results["trace"].graph.nodes if n.kind == "input"]
    assert ids.dynamic_dims and ids.dynamic_dims[0].endswith(" ∈ [2, 16]")


def test_each_method_runs_in_the_runtime_at_its_own_shapes_above_the_floor(pipe):
    run = pipe.results["run"].artifact
    assert run.executed_by == "the ExecuTorch runtime"
    forward, decode = run.methods
    assert forward.name == "forward" and decode.name == "decode"
    assert forward.input_shapes == [[(1, PROMPT)], [(1, SHORT)]]  # the prompt at 8 and 5 tokens
    assert forward.output_shapes == [(1, PROMPT, VOCAB), (1, SHORT, VOCAB)]
    assert decode.input_shapes == [[(1, 1), (1,), (1, CACHE, DIM), (1, CACHE, DIM)]] * 2  # one token, its position
    assert decode.output_shapes == [(1, 1, VOCAB)] * 2
    for m in (forward, decode):
        assert m.float_vs_runtime_sqnr_db > FLOAT_FLOOR_DB, m.line()
        assert m.reference_vs_runtime_sqnr_db > REFERENCE_FLOOR_DB, m.line()
    # forward's entry is the run's own figure; decode's is in the stage metrics and summary.json
    assert forward.float_vs_runtime_sqnr_db == pipe.numerics().float_vs_runtime_sqnr_db
    metrics = pipe.results["run"].metrics
    assert metrics["decode_float_vs_runtime_sqnr_db"] == decode.float_vs_runtime_sqnr_db
    assert "decode_float_vs_runtime_sqnr_db" not in pipe.numerics()  # RunNumerics keeps forward's figures
    notes = pipe.results["run"].notes
    assert any(n.startswith("method decode: 2 batch(es), inputs (1, 1) (1,) (1, 24, 64)") for n in notes)


def test_summary_json_and_the_cli_list_each_method_with_its_sqnr(pipe, capsys):
    from quantviz.cli import _finish
    from quantviz.outputs import summary

    methods = summary(pipe)["methods"]
    assert list(methods) == ["forward", "decode"]
    assert methods["decode"]["input_shapes"][0] == [[1, 1], [1], [1, CACHE, DIM], [1, CACHE, DIM]]
    assert methods["forward"]["input_shapes"] == [[[1, PROMPT]], [[1, SHORT]]]
    assert methods["decode"]["float_vs_runtime_sqnr_db"] > FLOAT_FLOOR_DB
    assert _finish(pipe, MODEL) == 0
    out = capsys.readouterr().out
    assert "method forward: 2 batch(es)" in out and "method decode: 2 batch(es)" in out


def test_the_runtime_decodes_from_the_cache_its_own_prefill_returned(pipe):
    """Prefill in the runtime, its keys and values written into the cache, then decode in the runtime: the chain a
    user's generation loop runs, against the float model's same chain."""
    spec = load_model(MODEL)
    ids = torch.randint(0, VOCAB, (1, SHORT), generator=torch.Generator().manual_seed(3))
    token, pos = torch.tensor([[7]]), torch.tensor([SHORT])
    buffer = pipe.pte_bytes()
    (_, k, v), = call_in_worker(run_program, buffer, [(ids,)], False, "forward")
    k_cache, v_cache = torch.zeros(1, CACHE, DIM), torch.zeros(1, CACHE, DIM)
    k_cache[:, :SHORT], v_cache[:, :SHORT] = k, v
    (logits, k_out, _), = call_in_worker(run_program, buffer, [(token, pos, k_cache, v_cache)], False, "decode")
    with torch.no_grad():
        _, fk, fv = spec.model(ids)
        fk_cache, fv_cache = torch.zeros(1, CACHE, DIM), torch.zeros(1, CACHE, DIM)
        fk_cache[:, :SHORT], fv_cache[:, :SHORT] = fk, fv
        f_logits, f_k, _ = spec.model.decode(token, pos, fk_cache, fv_cache)
    assert logits.shape == (1, 1, VOCAB) and k_out.shape == (1, CACHE, DIM)
    assert sqnr_db(f_logits.flatten(), logits.flatten()) > FLOAT_FLOOR_DB
    assert torch.equal(k_out[:, SHORT + 1:], torch.zeros(1, CACHE - SHORT - 1, DIM))  # nothing past the position
    assert sqnr_db(f_k[:, :SHORT + 1].flatten(), k_out[:, :SHORT + 1].flatten()) > FLOAT_FLOOR_DB


@pytest.fixture(scope="module")
def refused_then_fixed(flow):
    refused = flow(MODEL, flow="pt2e")
    return refused, flow(MODEL, **{"flow": "pt2e", **refused.failed.error.fix})  # the torchao run: cached once


def test_pt2e_refuses_methods_at_its_first_stage_and_the_fix_runs_them(refused_then_fixed):
    refused, fixed = refused_then_fixed
    assert list(refused.results) == ["trace"] and refused.failed.name == "trace"
    err = refused.failed.error
    assert err.fix == {"flow": "torchao"} and err.hint.startswith("use --flow torchao")
    assert err.message == ("the model's methods forward, decode cannot go through the pt2e flow: it quantizes one "
                           "exported graph (forward's), so the other methods would not be quantized the same way")
    assert err.metrics == {"methods": 2}
    assert fixed.config.flow == "torchao" and fixed.ok, fixed.failed and fixed.failed.error
    assert [m.name for m in fixed.results["run"].artifact.methods] == ["forward", "decode"]


def test_fx_and_the_recipe_flow_refuse_methods_at_their_first_stage(flow):
    from quantviz import Pipeline

    fx = flow(MODEL, flow="fx")
    assert fx.failed.name == "trace" and fx.failed.error.fix == {"flow": "torchao"}
    assert "cannot go through the fx flow" in fx.failed.error.message
    recipe = Pipeline(load_model(MODEL), PipelineConfig(recipe="xnnpack_fp32")).run()
    assert recipe.failed.name == list(recipe.results)[0] and len(recipe.results) == 1
    err = recipe.failed.error
    assert err.fix == {"flow": "torchao", "recipe": ""} and "recipe flow" in err.message
    assert recipe.config.with_changes(**err.fix).flow == "torchao"


def test_the_bare_calls_make_the_same_pte(pipe):
    """torchao quantize_, torch.export of each method, to_edge_transform_and_lower with the dict of programs,
    to_executorch: the bytes quantviz's stages made."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from torchao.quantization.granularity import PerGroup
    from torchao.quantization.quant_api import Int8DynamicActivationIntxWeightConfig, quantize_

    spec = load_model(MODEL)
    quantized = copy.deepcopy(spec.model).eval()
    quantize_(quantized, Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4,
                                                               weight_granularity=PerGroup(32)))

    class Decode(torch.nn.Module):  # what a user writes to export another method: forward calls it
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, token, pos, k_cache, v_cache):
            return self.model.decode(token, pos, k_cache, v_cache)

    programs = {"forward": torch.export.export(quantized, spec.example_inputs, dynamic_shapes=spec.dynamic_shapes),
                "decode": torch.export.export(Decode(quantized), spec.method("decode").example_inputs)}
    et_program = to_edge_transform_and_lower(programs, partitioner=[XnnpackPartitioner()]).to_executorch()
    assert et_program.methods == {"forward", "decode"}
    assert et_program.buffer == pipe.pte_bytes()


@pytest.mark.slow
def test_the_reproduce_script_exports_and_lowers_both_methods(pipe, tmp_path):
    """The calls the stages recorded, as a script: it exports decode beside forward and writes the same bytes."""
    import subprocess
    import sys

    from quantviz.script import reproduce_script

    text = reproduce_script(MODEL, pipe)
    assert "decode_program = torch.export.export(method_module(quantized, 'decode')" in text
    script = tmp_path / "reproduce.py"
    script.write_text(text)
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])  # this checkout's quantviz and sample_models
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "model.pte").read_bytes() == pipe.pte_bytes()


@pytest.mark.slow
@pytest.mark.e2e
def test_the_run_and_emit_pages_list_the_methods(monkeypatch):
    """The app on the model under torchao: the run page's table has a row per method with its SQNR, the emit page's
    notes name the methods in the .pte."""
    import os

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("QUANTVIZ_DEFAULT_FLOW", "torchao")
    monkeypatch.setenv("QUANTVIZ_DEFAULT_MODEL", MODEL)
    at = AppTest.from_file(os.path.join(os.path.dirname(__file__), "..", "app.py"), default_timeout=900)
    at.run()
    assert not at.exception, at.exception
    at.session_state.stage = "run"
    at.run()
    assert not at.exception, at.exception
    assert "#### Methods in the .pte (2)" in [m.value for m in at.markdown]
    table = next(t.value for t in at.table if "float vs runtime SQNR (dB)" in t.value.columns)
    assert list(table.index) == ["forward", "decode"]
    assert all(float(v) > FLOAT_FLOOR_DB for v in table["float vs runtime SQNR (dB)"])
    at.session_state.stage = "emit"
    at.run()
    assert any("the .pte holds 2 methods: forward, decode" in c.value for c in at.caption)
