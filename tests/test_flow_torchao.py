"""The torchao flow: quantize_ (8da4w, 8da8w, int8 weight-only, embeddings), export, lower to XNNPACK, run; the
stages it does not have shown as absent; groupwise qparams decoded; quantviz reaches run where the bare calls do
and makes the same .pte."""
import pytest
import torch

from quantviz import Pipeline, PipelineConfig, load_model
from quantviz.bare_flow import run_bare
from quantviz.flows import flow_of

pytestmark = pytest.mark.e2e


def test_the_rail_shows_what_the_flow_has_and_what_it_does_not():
    flow = flow_of(PipelineConfig(flow="torchao"))
    assert flow.names == ("trace", "quantize", "capture", "edge", "delegate", "fuse", "emit", "run")
    assert set(flow.absent) == {"prepare", "calibrate", "convert"}
    assert "nothing to calibrate" in flow.absent["calibrate"]
    assert [flow.number(n) for n in ("trace", "quantize", "calibrate", "capture")] == [1, 2, 4, 6]


def test_8da4w_reaches_run_with_groupwise_weights_and_one_pattern_per_linear():
    pipe = Pipeline(load_model("sample:mlp_dynamic"), PipelineConfig(flow="torchao", group_size=32)).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    rows = pipe.results["quantize"].table
    assert [r.module_type for r in rows] == ["Linear"] * 3
    first = rows[0]
    assert first.dtype == "int4" and first.block_size == (1, 32) and first.granularity == "per group 32"
    assert first.scale_shape == (first.shape[0], first.shape[1] // 32) == (128, 2)
    assert first.activation == "int8 asymmetric per token"
    capture = pipe.results["capture"].graph
    weight_dq = [n for n in capture.nodes if n.kind == "dequantize" and n.qparams.scheme == "per_group"]
    assert len(weight_dq) == 3 and weight_dq[0].qparams.group_size == 32
    assert weight_dq[0].qparams.label().startswith("int4 per-group 32")
    assert weight_dq[0].qparams.scale_min > 0 and weight_dq[0].qparams.scale_max >= weight_dq[0].qparams.scale_min
    dynamic = [n for n in capture.nodes if n.kind == "choose_qparams"]
    assert len(dynamic) == 3 and dynamic[0].qparams.scheme == "dynamic" and dynamic[0].qparams.block_size[-1] == 64
    assert len(capture.patterns) == 3 and all(len(p.members) == 7 for p in capture.patterns)  # q, 2 getitems, ...
    delegate = pipe.results["delegate"].graph
    assert sum(n.kind == "delegate" for n in delegate.nodes) == 1
    n = pipe.numerics()
    assert n["reference_vs_runtime_sqnr_db"] > 30 and n["float_vs_runtime_sqnr_db"] > 10
    assert "no calibration" in " ".join(pipe.results["quantize"].notes)


@pytest.mark.parametrize("changes", [dict(scheme="8da8w"), dict(scheme="int8-weight-only"),
                                     dict(group_size=0)])
def test_the_other_schemes_reach_the_runtime_like_the_bare_calls(changes):
    config = PipelineConfig(flow="torchao", **changes)
    bare = run_bare(load_model("sample:mlp_dynamic"), config)
    pipe = Pipeline(load_model("sample:mlp_dynamic"), config).run()
    assert pipe.ok == bare.ok, (bare.error, pipe.failed and pipe.failed.error)
    if pipe.ok:
        assert pipe.pte_bytes() == bare.pte  # the same calls make the same program
        rows = pipe.results["quantize"].table
        assert rows and all(r.dtype == ("int4" if config.scheme == "8da4w" else "int8") for r in rows)


def test_quantized_embeddings_are_fused_into_embedding_byte_and_run():
    config = PipelineConfig(flow="torchao", quantize_embeddings=8)
    pipe = Pipeline(load_model("sample:embedding"), config).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    table = {r.module_type: r for r in pipe.results["quantize"].table}
    assert table["Embedding"].dtype == "int8" and table["Embedding"].activation == ""
    fused = pipe.results["fuse"].graph
    assert any("embedding_byte" in n.target for n in fused.nodes)
    bare = run_bare(load_model("sample:embedding"), config)
    assert bare.ok and bare.pte == pipe.pte_bytes()


def test_skip_module_keeps_a_linear_float_and_says_so():
    pipe = Pipeline(load_model("sample:mlp_dynamic"), PipelineConfig(flow="torchao", skip_modules=("fc3",),
                                                                     until="quantize")).run()
    assert [r.module for r in pipe.results["quantize"].table] == ["fc1", "fc2"]
    assert "1 linear layer(s) left float" in " ".join(pipe.results["quantize"].notes)
    assert "fqn.startswith" in "\n".join(pipe.results["quantize"].calls)


def test_the_float_model_is_not_changed():
    spec = load_model("sample:mlp_dynamic")
    before = {k: v.clone() for k, v in spec.model.state_dict().items()}
    Pipeline(spec, PipelineConfig(flow="torchao", until="capture")).run()
    after = spec.model.state_dict()
    assert all(type(after[k]) is torch.Tensor and torch.equal(before[k], after[k]) for k in before)
