"""Keyword and nested inputs and declared dynamic dimensions (``ModelSpec.example_kwargs``, ``dynamic_shapes``,
``Batch``): a model called as ``model(input_ids, attention_mask=..., cache={"k": ..., "v": ...})`` with a dynamic
sequence length (sample:kwargs_decoder) goes through pt2e + XNNPACK and torchao to the runtime, which runs the one
.pte at two lengths; fx refuses it at trace with ``--flow pt2e`` as the fix, and the fix reaches the runtime."""
from __future__ import annotations

import pytest
import torch

from quantviz import Batch, ModelSpec, PipelineConfig, load_model
from quantviz.measure.metrics import sqnr_db
from quantviz.model_spec import call, flat_inputs, input_paths
from quantviz.render.dot import node_label
from sample_models.kwargs_decoder import SEQ, SHORT, VOCAB


def _spec() -> ModelSpec:
    return load_model("sample:kwargs_decoder")


def test_a_batch_flattens_in_the_programs_order_and_names_its_leaves():
    ids, mask, k, v = torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 3), torch.randn(2), torch.randn(3)
    b = Batch((ids,), {"attention_mask": mask, "cache": {"k": k, "v": v}})
    assert [t is x for t, x in zip(flat_inputs(b), (ids, mask, k, v))] == [True] * 4
    assert input_paths(b, ("input_ids",)) == ["input_ids", "attention_mask", "cache['k']", "cache['v']"]
    # keyword dicts are put in the example's key order (the program's flat inputs are in that order)
    swapped = Batch((ids,), {"cache": {"v": v, "k": k}, "attention_mask": mask})
    assert [t is x for t, x in zip(flat_inputs(swapped, like=b), (ids, mask, k, v))] == [True] * 4
    assert call(lambda i, attention_mask, cache: (i, attention_mask, cache["v"]), b)[2] is v
    # positional specs are as they were: the example is the tuple, and the batches stay tuples
    x = torch.randn(1, 4)
    old = ModelSpec("old", torch.nn.Linear(4, 2), (x,))
    assert old.example is old.example_inputs and old.calibration_data(4) == [(x,)] and not old.structured
    assert flat_inputs((x,)) == (x,)


def test_the_spec_knows_its_dynamic_dimensions_and_refuses_batches_outside_them():
    spec = _spec()
    assert spec.structured == "keyword inputs (attention_mask, cache) and dynamic dimensions (dynamic_shapes)"
    assert spec.input_paths() == ["input_ids", "attention_mask", "cache['k']", "cache['v']"]
    assert spec.dynamic_dims() == {"input_ids": {1: (2, 16)}, "attention_mask": {1: (2, 16)}}
    short = spec.eval_batches[1][0]
    assert short.args[0].shape == (1, SHORT) and spec.mismatch(short) == ""
    ex = spec.example
    too_long = Batch((torch.zeros(1, 20, dtype=torch.long),),
                     {"attention_mask": torch.ones(1, 20, dtype=torch.long), "cache": ex.kwargs["cache"]})
    assert spec.mismatch(too_long) == \
        "input_ids is (1, 20) int64, the example is (1, 8) int64; dynamic: dim 1 in [2, 16]"
    no_cache = Batch(ex.args, {"attention_mask": ex.kwargs["attention_mask"]})
    assert spec.mismatch(no_cache).startswith("has 2 input(s) (input_ids, attention_mask), the example has 4")
    other_cache = Batch(ex.args, {**ex.kwargs, "cache": {"k": torch.randn(1, 5, 32), "v": torch.randn(1, 4, 32)}})
    assert spec.mismatch(other_cache).startswith("cache['k'] is (1, 5, 32) float32, the example is (1, 4, 32)")


@pytest.fixture(scope="module")
def refused_then_fixed(flow):
    """fx on the model (refused at trace), then the refusal's fix applied to the same config."""
    refused = flow("sample:kwargs_decoder", flow="fx")
    fix = refused.failed.error.fix
    return refused, flow("sample:kwargs_decoder", **{"flow": "fx", **fix, "backend": "xnnpack"})


def _per_batch_sqnr(run) -> list[float]:
    return [sqnr_db(f.flatten(), r.flatten()) for f, r in zip(run.float_outputs, run.runtime_outputs)]


def test_fx_refuses_keyword_inputs_at_trace_with_the_fix_and_the_fix_reaches_the_runtime(refused_then_fixed):
    refused, fixed = refused_then_fixed
    assert list(refused.results) == ["trace"] and refused.failed.name == "trace"
    err = refused.failed.error
    assert err.fix == {"flow": "pt2e"} and "--flow pt2e" in err.hint
    assert "keyword inputs (attention_mask, cache) and dynamic dimensions" in err.message and "fx flow" in err.message
    assert err.metrics == {"keyword_inputs": 2, "dynamic_shapes": 1}
    assert fixed.config.flow == "pt2e" and fixed.ok, fixed.failed and fixed.failed.error


def test_pt2e_xnnpack_runs_keyword_inputs_at_two_sequence_lengths(refused_then_fixed):
    _, pipe = refused_then_fixed
    assert pipe.results["delegate"].graph.kind_counts()["delegate"] >= 1
    run = pipe.results["run"].artifact
    assert run.executed_by == "the ExecuTorch runtime"
    # one .pte, the declared dynamic sequence length: SEQ tokens and SHORT tokens
    assert [tuple(o.shape) for o in run.runtime_outputs] == [(1, SEQ, VOCAB), (1, SHORT, VOCAB)]
    n = pipe.numerics()
    assert n["float_vs_runtime_sqnr_db"] > 25 and n["reference_vs_runtime_sqnr_db"] > 40  # measured 30.9, 48.5
    assert all(s > 25 for s in _per_batch_sqnr(run)), _per_batch_sqnr(run)
    # the graph names the inputs by their place in forward's arguments, and the dynamic length with its range
    inputs = {n.name: n for n in pipe.results["trace"].graph.nodes if n.kind == "input"}
    assert [n.input_path for n in inputs.values()] == \
        ["args[0]", "kwargs['attention_mask']", "kwargs['cache']['k']", "kwargs['cache']['v']"]
    (dim,) = inputs["input_ids"].dynamic_dims
    assert dim.endswith(" ∈ [2, 16]") and inputs["attention_mask"].dynamic_dims == [dim]
    assert inputs["cache_k"].dynamic_dims == [] and inputs["cache_k"].shape == [1, 4, 32]
    label = node_label(inputs["cache_k"])
    assert "kwargs['cache']['k']" in label and dim not in label
    assert dim in node_label(inputs["attention_mask"]) and "args[0]" not in node_label(inputs["input_ids"])
    # the modules prepare_pt2e and convert_pt2e make, and the edge program (what the .pte is emitted from), too
    convert_inputs = [n for n in pipe.results["convert"].graph.nodes if n.kind == "input"]
    assert [n.input_path for n in convert_inputs][-2:] == ["kwargs['cache']['k']", "kwargs['cache']['v']"]
    assert convert_inputs[0].dynamic_dims == [dim]
    edge_inputs = [n for n in pipe.results["edge"].graph.nodes if n.kind == "input"]
    assert [n.input_path for n in edge_inputs][-2:] == ["kwargs['cache']['k']", "kwargs['cache']['v']"]
    assert any(n.dynamic_dims == [dim] for n in edge_inputs)
    calls = "\n".join(pipe.results["trace"].calls)
    assert "kwargs=example_kwargs, dynamic_shapes=dynamic_shapes" in calls


def test_torchao_runs_keyword_inputs_at_two_sequence_lengths(flow):
    pipe = flow("sample:kwargs_decoder", flow="torchao")
    assert pipe.ok, pipe.failed and pipe.failed.error
    run = pipe.results["run"].artifact
    assert [tuple(o.shape) for o in run.runtime_outputs] == [(1, SEQ, VOCAB), (1, SHORT, VOCAB)]
    n = pipe.numerics()
    assert n["float_vs_runtime_sqnr_db"] > 18 and n["reference_vs_runtime_sqnr_db"] > 40  # measured 23.1, 48.7
    assert all(s > 18 for s in _per_batch_sqnr(run)), _per_batch_sqnr(run)
    assert "kwargs=example_kwargs, dynamic_shapes=dynamic_shapes" in "\n".join(pipe.results["capture"].calls)


def test_a_factory_may_return_keyword_inputs():
    from quantviz.errors import LoadError
    from quantviz.loading import as_spec

    ids, mask = torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 4)
    spec = as_spec((torch.nn.Identity(), (ids,), {"attention_mask": mask}), "m")
    assert spec.example_kwargs == {"attention_mask": mask} and spec.example.args == (ids,)
    with pytest.raises(LoadError, match="example_kwargs a dict of its keyword ones"):
        as_spec((torch.nn.Identity(), (ids,), {"attention_mask": "all"}), "m")


def test_outputs_of_two_sequence_lengths_concatenate_a_row_per_position():
    from quantviz.runtime import concat_outputs

    rows = concat_outputs([torch.zeros(1, SEQ, VOCAB), torch.ones(1, SHORT, VOCAB)])
    assert rows.shape == (SEQ + SHORT, VOCAB) and rows[SEQ:].eq(1).all()
    assert concat_outputs([torch.zeros(2, 3), torch.ones(1, 3)]).shape == (3, 3)  # same widths: as before


@pytest.mark.slow
def test_compare_on_keyword_inputs_reaches_every_table(refused_then_fixed):
    from quantviz.numerics.compare import compare

    _, pipe = refused_then_fixed
    lines = "\n".join(compare(pipe, max_batches=2).summary_lines())
    assert "float vs runtime: SQNR 30.9 dB" in lines and "blame: 15 quantized pattern(s)" in lines
    assert "could not" not in lines


def test_the_recipe_flow_refuses_keyword_inputs_at_its_first_stage_with_the_fix():
    from quantviz import Pipeline

    spec = _spec()
    pipe = Pipeline(spec, PipelineConfig(recipe="xnnpack_fp32")).run()
    assert pipe.failed.name == list(pipe.results)[0] and not any(r.ok for r in pipe.results.values())
    err = pipe.failed.error
    assert err.fix == {"flow": "pt2e", "recipe": ""} and "ExportSession" in err.message
    assert pipe.config.with_changes(**err.fix).flow == "pt2e"


def test_synthetic_held_out_batches_are_drawn_for_every_keyword_leaf():
    from quantviz.data import evaluation_data

    spec = _spec()
    data = evaluation_data(spec, PipelineConfig(held_out=2))
    assert len(data.batches) == 2 and all(isinstance(b, Batch) and spec.mismatch(b) == "" for b in data.batches)
    assert [d.split(":")[0] for d in data.drawn] == ["input_ids", "attention_mask", "cache['k']", "cache['v']"]
    assert data.drawn[0] == f"input_ids: token ids in [0, {VOCAB}) (embed)"
    assert not torch.equal(data.batches[0].kwargs["cache"]["k"], spec.example.kwargs["cache"]["k"])


def test_a_pt2_keeps_its_keyword_example_inputs(tmp_path):
    class M(torch.nn.Module):
        def forward(self, x, scale=None):
            return x * scale["s"]

    x, s = torch.randn(2, 3), torch.randn(3)
    torch.export.save(torch.export.export(M(), (x,), kwargs={"scale": {"s": s}}), tmp_path / "m.pt2")
    spec = load_model(str(tmp_path / "m.pt2"))
    assert spec.example_kwargs["scale"]["s"].shape == (3,) and spec.input_paths() == ["input0", "scale['s']"]
    assert torch.allclose(call(spec.model, spec.example), x * s)
