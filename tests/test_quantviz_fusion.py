"""quantviz's own patterns and kernels in the real flow: what the fuse stage replaces, and that the .pte calls
quantviz::*.out, runs in the runtime and stays within 1 LSB of the reference quantized model."""
import pytest
import torch

from sample_models import LANGUAGE_MODELS, REAL_SIZE, SAMPLES, STRUCTURED, ZOO

pytestmark = pytest.mark.e2e

FLOAT_OPS = ("aten.convolution", "aten.addmm", "aten.mm", "aten.add.Tensor", "aten.mul.Tensor",
             "aten.max_pool2d", "aten.avg_pool2d", "aten.mean")


def pte_operators(pipe) -> list[str]:
    plan = pipe.results["emit"].artifact.executorch_program.execution_plan[0]
    return [f"{o.name}.{o.overload}" for o in plan.operators]


def fused_graph_targets(pipe) -> list[str]:
    ep = pipe.results["fuse"].artifact.exported_program()
    return [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]


@pytest.mark.parametrize("sample,expected", [
    ("conv_add", {"quantviz::conv2d": 2, "quantviz::add_relu": 1}),
    ("digits_cnn", {"quantviz::conv2d": 2, "quantviz::max_pool2d": 2, "quantviz::linear": 1}),
])
def test_pt2e_samples_fully_lowered_to_quantviz_ops(flow, sample, expected):
    pipe = flow(f"sample:{sample}", flow="pt2e", fusion="quantviz")
    assert pipe.ok, pipe.failed and str(pipe.failed.error)
    fusions = pipe.results["fuse"].diagnostics.fusions
    counts = {}
    for f in fusions:
        counts[f.op] = counts.get(f.op, 0) + 1
    assert {k: v for k, v in counts.items() if k.startswith("quantviz::")} == expected
    # every conv/linear/add/pool pattern is gone: no float compute op is left in the fused graph
    left = [t for t in fused_graph_targets(pipe) if any(op in t for op in FLOAT_OPS)]
    assert left == []
    ops = pte_operators(pipe)
    assert {f"{op}.out" for op in expected} <= set(ops)
    n = pipe.numerics()
    assert n["reference_vs_runtime_max_lsb"] <= 1.0
    assert n["reference_vs_runtime_sqnr_db"] > 40


def test_digits_cnn_keeps_its_accuracy_with_quantviz_kernels(flow):
    n = flow("sample:digits_cnn", flow="pt2e", fusion="quantviz").numerics()
    assert n["runtime_accuracy"] >= n["float_accuracy"] - 0.01


@pytest.mark.parametrize("flow_name", ["fx", "pt2e"])
@pytest.mark.parametrize("sample", [s for s in SAMPLES if s != "not_traceable" and s not in ZOO and s not in REAL_SIZE
                                    and s not in LANGUAGE_MODELS and s not in STRUCTURED])
def test_every_sample_lowered_with_quantviz_patterns_runs(flow, sample, flow_name):
    pipe = flow(f"sample:{sample}", flow=flow_name, fusion="quantviz")
    if (sample, flow_name) == ("embedding", "fx"):  # see test_fx_embedding_needs_executorch_fusion_for_the_runtime
        assert pipe.failed.name == "run"
        return
    assert pipe.ok, pipe.failed and str(pipe.failed.error)
    assert pipe.results["fuse"].metrics["quantviz_fused"] >= 1
    assert any(op.startswith("quantviz::") for op in pte_operators(pipe))
    assert pipe.numerics()["reference_vs_runtime_max_lsb"] <= 1.0


def test_uint8_fx_graph_is_fused_too(flow):
    """ExecuTorch's QuantFusionPass only knows uint8 add; quantviz's patterns take the fx flow's uint8 convs."""
    pipe = flow("sample:conv_add", flow="fx", fusion="quantviz")
    ep = pipe.results["fuse"].artifact.exported_program()
    convs = [n for n in ep.graph.nodes if "quantviz.conv2d" in str(n.target)]
    assert len(convs) == 2 and all(n.meta["val"].dtype == torch.uint8 for n in convs)


def test_both_runs_quantviz_first_so_fx_conv_add_emits(flow):
    pipe = flow("sample:conv_add", flow="fx", fusion="both")
    assert pipe.ok, pipe.failed and str(pipe.failed.error)
    assert "quantviz::add_relu.out" in pte_operators(pipe)


def test_refused_match_is_named_with_its_reason(flow):
    pipe = flow("sample:tiny_transformer", flow="pt2e", fusion="quantviz")
    refusals = pipe.results["fuse"].diagnostics.refusals
    assert any(r.pattern == "mean" and "last two dims" in r.reason for r in refusals)
    assert any("not applied" in note and "last two dims" in note for note in pipe.results["fuse"].notes)


def test_fused_node_keeps_the_float_ops_provenance(flow):
    pipe = flow("sample:digits_cnn", flow="pt2e", fusion="quantviz")
    ep = pipe.results["fuse"].artifact.exported_program()
    conv = next(n for n in ep.graph.nodes if "quantviz.conv2d" in str(n.target))
    assert "self.conv1(" in conv.meta["stack_trace"]  # the source line of the conv it replaced
    assert conv.meta.get("from_node")  # provenance chain kept for the stage diff


@pytest.mark.parametrize("fusion", ["none", "quantviz"])
def test_fx_embedding_aborts_only_the_runtimes_worker_and_the_stage_names_the_cause(flow, fusion):
    """executorch 1.5.1's dequantize_per_channel aborts the process on float zero points (fx embedding weights):
    the runtime runs in a worker process, so only the worker dies; the run stage names the signal, the kernel's
    last words and the known cause with its fix."""
    err = flow("sample:embedding", flow="fx", fusion=fusion).results["run"].error
    assert "aborted (SIGABRT)" in err.message and "worker process" in err.message
    assert "float zero points" in err.message and "aborts" in err.message
    assert "--fusion both" in err.hint and err.fix == {"fusion": "executorch"}
    assert err.log and err.causes == ["WorkerDied: SIGABRT"]


def test_fx_embedding_runs_with_both_patterns(flow):
    pipe = flow("sample:embedding", flow="fx", fusion="both")
    assert pipe.ok, pipe.failed and str(pipe.failed.error)
    assert {"quantviz::linear.out", "quantized_decomposed::embedding_byte.out"} <= set(pte_operators(pipe))
