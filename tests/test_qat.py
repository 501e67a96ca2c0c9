"""--flow qat: torchao QAT stages (prepare_qat, train, convert_qat) on the text_lm sample, up to convert (the
lowering after it is the torchao flow's, tested there; bench/qat.py runs both flows to the runtime)."""
from __future__ import annotations

import pytest
import torch

from quantviz import Pipeline, PipelineConfig, load_model
from quantviz.backends import backend_name
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


def test_pt2e_qat_fake_quantizes_the_exported_graph_and_converts_to_q_dq():
    pipe = Pipeline(load_model("sample:digits_cnn"),
                    PipelineConfig(flow="qat_pt2e", backend="xnnpack", qat_steps=4)).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    assert pipe.stage_names[:4] == ("trace", "prepare_qat_pt2e", "train", "convert_qat_pt2e")
    assert pipe.results["prepare_qat_pt2e"].metrics["fake_quantizers"] > 0
    assert len(pipe.results["train"].artifact.losses) == 4
    kinds = pipe.results["convert_qat_pt2e"].graph.kind_counts()
    assert kinds["quantize"] >= 1 and kinds["dequantize"] >= 1
    numbers = pipe.numerics()  # the flow's runtime role: the .pte run in the runtime (it was empty without it)
    assert numbers.float_vs_runtime_sqnr_db > 15 and numbers.reference_vs_runtime_sqnr_db > 15
    assert pipe.result_of("delegated").metrics["delegate_calls"] >= 1


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
