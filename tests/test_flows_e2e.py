"""The real flow end to end: every sample, both flows, the .pte in the real ExecuTorch runtime."""
import pytest

from sample_models import LANGUAGE_MODELS, REAL_SIZE, SAMPLES, STRUCTURED, ZOO

pytestmark = pytest.mark.e2e

# the zoo: test_zoo_e2e.py; the language models: test_text_lm.py; real sizes: the benchmarks
RUNNABLE = [s for s in SAMPLES if s != "not_traceable" and s not in ZOO and s not in REAL_SIZE
            and s not in LANGUAGE_MODELS and s not in STRUCTURED]  # keyword inputs: test_keyword_inputs.py
# The one default combination that stops early, because of executorch 1.5.1 (see README "Known limitations").
EXPECTED_FAILURES = {("conv_add", "fx"): "emit"}


@pytest.mark.parametrize("flow_name", ["fx", "pt2e"])
@pytest.mark.parametrize("sample", RUNNABLE)
def test_default_options_reach_the_runtime(flow, sample, flow_name):
    pipe = flow(f"sample:{sample}", flow=flow_name)
    if (sample, flow_name) in EXPECTED_FAILURES:
        assert pipe.failed.name == EXPECTED_FAILURES[(sample, flow_name)]
        return
    assert pipe.ok, pipe.failed and str(pipe.failed.error)
    convert = pipe.results["convert"].graph.kind_counts()
    assert convert["quantize"] >= 1 and convert["dequantize"] >= 1
    assert pipe.results["convert"].graph.patterns
    pte = pipe.pte_bytes()
    assert pte[4:8] == b"ET12"  # ExecuTorch flatbuffer identifier
    n = pipe.numerics()
    assert n["float_vs_runtime_sqnr_db"] > 10  # int8 is close to float, but not equal
    assert n["reference_vs_runtime_sqnr_db"] >= 30  # the runtime computes what the reference model computes


def test_fx_conv_add_stops_at_emit_naming_add_relu(flow):
    err = flow("sample:conv_add").results["emit"].error
    assert "quantized_decomposed::add_relu" in err.message and "no .out kernel" in err.message
    assert "--fusion none" in err.hint
    fuse = flow("sample:conv_add").results["fuse"].graph
    assert [n.target for n in fuse.nodes if n.kind == "quantized_op"] == ["quantized_decomposed.add_relu.default"]


def test_fx_conv_add_without_fusion_runs(flow):
    pipe = flow("sample:conv_add", fusion="none")
    assert pipe.ok and pipe.numerics()["reference_vs_runtime_sqnr_db"] >= 30


def test_fx_flow_with_xnnpack_fails_at_run_naming_the_delegate(flow):
    pipe = flow("sample:conv_add", flow="fx", partitioner="xnnpack", fusion="none")
    assert pipe.failed.name == "run"
    err = pipe.failed.error
    assert "XNNPACK delegate could not build" in err.message and "xnn_status_invalid_parameter" in err.message
    assert "uint8 asymmetric" in err.hint and "--flow pt2e" in err.hint
    assert pipe.results["delegate"].graph.kind_counts()["delegate"] >= 1


def test_fx_flow_with_xnnpack_that_initialises_but_computes_wrong_numbers_is_a_failure(flow):
    """With to_edge + to_backend, XNNPACK initialises on the fx flow's uint8/int8 mix and computes wrong numbers:
    the runtime's error is 40+ dB above the quantization error, which no rounding drift reaches."""
    pipe = flow("sample:digits_cnn", flow="fx", partitioner="xnnpack", lowering="to_backend")
    err = pipe.results["run"].error
    assert "does not match the reference" in err.message and "computes something else" in err.message
    assert "uint8" in err.hint
    n = pipe.numerics()  # the measured numbers are kept for the user
    assert n["runtime_error_over_quantization_error_db"] > 30
    assert n["reference_vs_runtime_sqnr_db"] < 0 and n["runtime_accuracy"] < 0.5 < n["float_accuracy"]


def test_fx_flow_with_xnnpack_transform_and_lower_does_not_load(flow):
    """to_edge_transform_and_lower hands XNNPACK the same uint8/int8 mix; its delegate refuses it at load."""
    err = flow("sample:digits_cnn", flow="fx", partitioner="xnnpack").results["run"].error
    assert "XNNPACK delegate could not build" in err.message and "xnn_status_invalid_parameter" in err.message


def test_pt2e_xnnpack_names_the_xnnpack_node_it_cannot_build(flow):
    err = flow("sample:not_traceable", flow="pt2e", partitioner="xnnpack").results["run"].error
    assert "could not build 'StaticConstantPad'" in err.message and "--skip-module" in err.hint


@pytest.mark.parametrize("flow_name", ["fx", "pt2e"])
def test_digits_int8_accuracy_within_two_points_of_float(flow, flow_name):
    n = flow("sample:digits_cnn", flow=flow_name).numerics()
    assert n["float_accuracy"] > 0.95
    assert abs(n["float_accuracy"] - n["runtime_accuracy"]) <= 0.02


def test_digits_fx_reference_matches_runtime_to_30_db(flow):
    assert flow("sample:digits_cnn").numerics()["reference_vs_runtime_sqnr_db"] >= 30


def test_pt2e_xnnpack_delegates_conv_add_and_runs(flow):
    pipe = flow("sample:conv_add", flow="pt2e", partitioner="xnnpack")
    assert pipe.ok
    g = pipe.results["delegate"].graph
    delegates = [n for n in g.nodes if n.kind == "delegate"]
    assert len(delegates) == 1 and delegates[0].backend == "XnnpackBackend"
    inner = g.subgraphs[delegates[0].subgraph]
    assert sum(n.target == "aten.convolution.default" for n in inner.nodes) == 2
    assert g.kind_counts().get("quantize", 0) == 0 and not g.patterns  # everything went into the delegate
    assert pipe.numerics()["reference_vs_runtime_sqnr_db"] >= 30


def test_demo_partitioner_takes_only_the_conv_add_group(flow):
    pipe = flow("sample:mobilenet_v2", flow="pt2e", partitioner="demo")
    assert pipe.ok, pipe.failed and pipe.failed.error
    g = pipe.results["delegate"].graph
    delegates = [n for n in g.nodes if n.kind == "delegate"]
    assert delegates  # the residual adds fed by a projecting conv
    for d in delegates:
        inner = g.subgraphs[d.subgraph]
        ops = {n.target for n in inner.nodes if n.kind == "float_op"}
        assert ops <= {"aten.convolution.default", "aten.add.Tensor"} and "aten.add.Tensor" in ops
    assert g.patterns  # the other patterns stay outside, as q/dq around float ops
    assert pipe.numerics()["reference_vs_runtime_sqnr_db"] >= 30


@pytest.mark.parametrize("flow_name", ["fx", "pt2e"])
def test_dynamic_mode_quantizes_linear_activations_at_run_time(flow, flow_name):
    pipe = flow("sample:mlp_dynamic", flow=flow_name, mode="dynamic")
    assert pipe.ok, pipe.failed and str(pipe.failed.error)
    assert pipe.results["convert"].graph.kind_counts()["choose_qparams"] >= 1
    assert pipe.numerics()["float_vs_runtime_sqnr_db"] > 20
