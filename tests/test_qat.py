"""--flow qat: torchao QAT stages (prepare_qat, train, convert_qat) on the text_lm sample, up to convert (the
lowering after it is the torchao flow's, tested there; bench/qat.py runs both flows to the runtime)."""
from __future__ import annotations

import pytest
import torch

from quantviz import Pipeline, PipelineConfig, load_model
from quantviz.backends import backend_name
from quantviz.outputs import summary
from quantviz.stage_views import stage_view
from quantviz.flows import flow_of
from quantviz.stages.quantize import quantize_model


@pytest.fixture(scope="module")
def spec():
    return load_model("sample:text_lm")


def test_the_qat_flow_lists_prepare_train_convert_then_the_torchao_lowering():
    flow = flow_of(PipelineConfig(flow="qat"))
    assert flow.names[:4] == ("trace", "prepare_qat", "train", "convert_qat")
    assert flow.names[4:] == flow_of(PipelineConfig(flow="torchao")).names[2:]
    assert backend_name(PipelineConfig(flow="qat")) == "xnnpack"  # its record's default_backend


def test_qat_without_steps_quantizes_as_ptq_does(spec):
    """0 fine-tuning steps: the converted model is PTQ's model, output for output."""
    pipe = Pipeline(spec, PipelineConfig(flow="qat", qat_steps=0, until="convert_qat")).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    assert pipe.results["prepare_qat"].metrics["fake_quantized_linears"] == 9  # 4 per block and the head
    ptq, _ = quantize_model(spec.model, PipelineConfig(flow="torchao"))
    qat = pipe.results["convert_qat"].artifact
    x = spec.example_inputs
    with torch.no_grad():
        assert torch.equal(qat(*x), ptq(*x))
    assert pipe.results["convert_qat"].metrics["quantized_weights"] == 9


def test_fine_tuning_lowers_the_distillation_loss_and_changes_the_weights(spec):
    from quantviz.stages.qat import distillation_loss

    pipe = Pipeline(spec, PipelineConfig(flow="qat", qat_steps=16, until="convert_qat")).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    losses = pipe.results["train"].artifact.losses
    assert len(losses) == 16 and all(v >= 0 for v in losses)

    def mean_loss(model) -> float:  # over every calibration batch, fake quantizers in place
        with torch.no_grad():
            return sum(float(distillation_loss(model(*b), spec.model(*b), True))
                       for b in spec.calibration_batches) / len(spec.calibration_batches)

    before, after = mean_loss(pipe.results["prepare_qat"].artifact), mean_loss(pipe.results["train"].artifact.model)
    assert after < 0.9 * before  # fine-tuning brought the fake-quantized model closer to float
    assert "KL divergence" in pipe.results["train"].notes[0]
    ptq, _ = quantize_model(spec.model, PipelineConfig(flow="torchao"))
    with torch.no_grad():
        assert not torch.equal(pipe.results["convert_qat"].artifact(*spec.example_inputs), ptq(*spec.example_inputs))
    assert not any("FakeQuantized" in type(m).__name__ for m in pipe.results["convert_qat"].artifact.modules())


@pytest.fixture(scope="module")
def pt2e_qat():
    """digits_cnn through --flow qat_pt2e to the runtime, 4 fine-tuning steps (two tests read it)."""
    return Pipeline(load_model("sample:digits_cnn"),
                    PipelineConfig(flow="qat_pt2e", backend="xnnpack", qat_steps=4)).run()


def test_pt2e_qat_fake_quantizes_the_exported_graph_and_converts_to_q_dq(pt2e_qat):
    pipe = pt2e_qat
    assert pipe.ok, pipe.failed and pipe.failed.error
    assert pipe.stage_names[:4] == ("trace", "prepare_qat_pt2e", "train", "convert_qat_pt2e")
    assert pipe.results["prepare_qat_pt2e"].metrics["fake_quantizers"] > 0
    assert len(pipe.results["train"].artifact.losses) == 4
    kinds = pipe.results["convert_qat_pt2e"].graph.kind_counts()
    assert kinds["quantize"] >= 1 and kinds["dequantize"] >= 1
    numbers = pipe.numerics()  # the flow's runtime role: the .pte run in the runtime (it was empty without it)
    assert numbers.float_vs_runtime_sqnr_db > 15 and numbers.reference_vs_runtime_sqnr_db > 15
    assert pipe.result_of("delegated").metrics["delegate_calls"] >= 1


def test_pt2e_qat_weight_scales_differ_at_convert_named_on_the_dequantize_node(pt2e_qat):
    """XNNPACKQuantizer's QAT config (int8 weights in [-127, 127], symmetric): training's fused fake-quant kernel and
    convert_pt2e's observer compute the weight scale by different formulas (pytorch/ao#4824, not in torchao 0.18):
    every weight's dequantize node differs by about 0.39 %, its integers with it; activations (affine) agree to an
    ulp."""
    pipe = pt2e_qat
    assert pipe.ok, pipe.failed and pipe.failed.error
    result = pipe.results["convert_qat_pt2e"]
    comparison = result.diagnostics.qat_qparams
    bad = comparison.mismatched()
    assert sorted(c.quantizes for c in bad) == ["conv1_weight of conv2d", "conv2_weight of conv2d_1",
                                                "fc_weight of linear"]
    names = {n.name for n in result.graph.nodes}
    for check in bad:
        assert check.tensor == "weight" and check.node in names and check.node.startswith("dequantize_per_tensor")
        assert 0.0038 < check.max_scale_rel_diff < 0.00395  # |min| sets it: 1 - 127·255/(128·254); max: 255/254 - 1
        assert check.values_differ > 0 and check.note.startswith("known cause: training's fused kernel")
        fq = pipe.results["train"].artifact.model.get_submodule(check.fake_quantizer)
        obs = fq.activation_post_process
        assert obs.calculate_qparams()[0].item() == pytest.approx(  # what convert_pt2e wrote: max(|min|, max) / 127
            max(-obs.min_val.item(), obs.max_val.item()) / 127, rel=1e-6)
    acts = [c for c in comparison.checks if c.tensor == "activation"]
    # the same formula in both (float32 against the kernel's double: at most an ulp apart)
    assert len(acts) == 7 and all(c.max_scale_rel_diff < 1e-6 and c.max_zero_point_diff == 0 and not c.mismatch
                                  for c in acts)
    assert result.notes[0].startswith("qparams at export differ from training's at 3 of 10 fake quantizer(s)")
    assert any("pytorch/ao#4824" in n for n in result.notes)
    assert result.metrics["qat_qparams_mismatched"] == 3
    data = summary(pipe)["qat_qparams"]
    assert data["agree"] is False and sorted(data["mismatched"]) == sorted(c.node for c in bad)
    notes = dict(stage_view(pipe, "convert_qat_pt2e").notes)  # the graph shows each on its node
    conv1 = next(c for c in bad if c.quantizes == "conv1_weight of conv2d")
    assert notes[conv1.node] in (f"qparams ≠ training's: scale {s} %, {conv1.values_differ} of 72 integers"
                                 for s in ("0.391", "0.394"))


def test_qat_training_qparams_converts_the_model_that_was_trained(pt2e_qat):
    """--qat-training-qparams: convert_pt2e takes each fake quantizer's trained scale and zero point, so nothing
    differs and the reference model computes what the fine-tuned fake-quantized model computes, output for output."""
    import copy

    from torchao.quantization.pt2e.fake_quantize import disable_observer

    fork = pt2e_qat.fork(pt2e_qat.config.with_changes(qat_training_qparams=True)).run(until="convert_qat_pt2e")
    result = fork.results["convert_qat_pt2e"]
    assert result.ok, fork.failed and fork.failed.error
    comparison = result.diagnostics.qat_qparams
    assert not comparison.mismatched() and comparison.max_scale_rel_diff == 0.0 and comparison.values_differ == 0
    assert result.notes[0].startswith("convert_pt2e took each fake quantizer's trained scale and zero point")
    assert any("m.calculate_qparams = lambda" in c for c in result.calls)
    trained = copy.deepcopy(fork.results["train"].artifact.model)
    trained.apply(disable_observer)  # run it as trained, without moving its ranges
    with torch.no_grad():
        for (x,), _ in fork.spec.eval_batches[:3]:
            assert torch.equal(result.artifact(x), trained(x))
        assert not torch.equal(pt2e_qat.results["convert_qat_pt2e"].artifact(x), trained(x))


def test_both_qat_flows_have_bare_calls_and_export_llm_has_no_bare_equivalent():
    """A parity row under QAT runs a user's own QAT script (it once stopped with KeyError 'reference')."""
    from quantviz.bare_flow import bare_steps, run_bare

    assert bare_steps(PipelineConfig(flow="qat")) == ("prepare_qat", "train", "convert_qat", "capture", "edge",
                                                      "fuse", "emit", "run")
    assert bare_steps(PipelineConfig(flow="qat_pt2e", backend="xnnpack"))[:4] == (
        "trace", "prepare_qat_pt2e", "train", "convert_qat_pt2e")
    bare = run_bare(load_model("sample:mlp_dynamic"), PipelineConfig(llm_config="llm.yaml"))
    assert not bare.ok and bare.failed_step is None and "no bare calls" in bare.absent


@pytest.mark.e2e
def test_the_bare_qat_calls_make_quantviz_s_program_byte_for_byte():
    from quantviz.parity import check_parity

    row = check_parity(lambda: load_model("sample:mlp_dynamic"), PipelineConfig(flow="qat", qat_steps=2))
    assert row.bare_ok and row.quantviz_ok, (row.bare_failure, row.quantviz_failure)
    assert row.same_pte and row.same_lowering and row.bare_delegates == row.quantviz_delegates >= 1


def test_pt2e_qat_runs_only_for_backends_whose_record_says_so():
    pipe = Pipeline(load_model("sample:conv_add"), PipelineConfig(flow="qat_pt2e", backend="vulkan",
                                                                   until="prepare_qat_pt2e")).run()
    assert pipe.failed is not None and pipe.failed.name == "prepare_qat_pt2e"
    assert "backend 'vulkan' quantizes with another quantizer" in pipe.failed.error.message
    assert pipe.failed.error.fix == {"backend": "xnnpack"}
