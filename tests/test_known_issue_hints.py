"""Every hint of the known-issues table (``quantviz.known_issues.KNOWN_ISSUES`` and the runtime preflight's
checks) on a model that triggers it: the stage fails with the hint's fix as data, and with the fix applied the same
model gets past that stage. A hint that does not get further is not given. So are the run stage's own hints where a
model triggers them (OpenVINO's wrong output on LeViT's head: ``--partitioner none`` runs it and matches).

Three hints are covered where their backend or stage is tested in depth (listed in ``ELSEWHERE``): Arm's guard
submodule and Vulkan's per-channel weights (tests/test_backends.py), XNNPACK's ConvertToLinearPass
(tests/test_failure_causes.py).
"""
from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from quantviz import ModelSpec, Pipeline, PipelineConfig, load_model
from quantviz.flows import flow_of
from quantviz.known_issues import KNOWN_ISSUES
from quantviz.parity import SEQUENCE_CONFIGS
from quantviz.stages.convert_pt2e import convert_options
from quantviz.stages.run import died_error
from quantviz.workers import WorkerDied

pytestmark = pytest.mark.e2e

# (stage, fix) of each hint -> the test that shows it gets further on a model that triggers it
COVERED = {
    ("delegate", (("group_size", 32),)): "test_xnnpack_group_size_hint_gets_past_delegate",
    ("emit", (("partitioner", "auto"),)): "test_torchaos_affine_ops_get_past_emit_when_delegated",
    ("emit", (("fusion", "quantviz"),)): "test_fx_add_relu_gets_past_emit_with_quantviz_fusion",
    ("run", (("fusion", "executorch"),)): "test_float_zero_point_embedding_runs_with_executorch_fusion",
    ("run", (("fusion", "none"),)): "test_a_broadcasting_quantized_add_runs_without_fusion",
    ("delegate", (("delegate_granularity", "op"),)): "test_a_dependency_cycle_in_qwen3s_qk_norm_gets_past_per_op",
}
ELSEWHERE = {
    ("delegate", (("per_channel", True),)):
        "tests/test_backends.py::test_vulkans_per_tensor_conv_assert_is_named_with_its_fix",
    ("prepare", (("check_guards", False),)):
        "tests/test_backends.py::test_an_arm_pass_that_cannot_run_the_guards_is_named_with_its_remedy",
    ("delegate", (("lowering", "transform_and_lower"),)):
        "tests/test_failure_causes.py::test_convert_to_linear_pass_failure_at_delegate_names_the_inner_cause_and_the_linear",
    ("train", (("keep_integer_scalars", True),)):
        "tests/test_archs.py::test_a_failure_inside_a_no_grad_region_leaves_grad_mode_on_and_keep_integer_scalars_gets_past_train",
    ("train", ()):  # no config fix: the data is the cause, and two samples a batch get further
        "tests/test_archs.py::test_under_qat_eager_batchnorm_refuses_one_value_per_channel_and_two_samples_get_past_train",
}


def key(stage: str, fix: dict) -> tuple:
    return stage, tuple(sorted(fix.items()))


def test_every_hint_of_the_table_has_a_test_that_gets_further():
    table = {key(i.stage, i.fix) for i in KNOWN_ISSUES}
    assert table <= set(COVERED) | set(ELSEWHERE), table - set(COVERED) - set(ELSEWHERE)
    assert all(name in globals() for name in COVERED.values())


def mlp_spec(width: int = 64) -> ModelSpec:
    """Two linears: torchao's 8da4w quantizes both (in_features 64: groups of 16, 32 or 64 fit)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 8)).eval()
    batches = [(torch.randn(2, width),) for _ in range(3)]
    return ModelSpec("mlp", model, batches[0], calibration_batches=batches[:2], eval_batches=[(batches[2], None)])


class BroadcastAdd(nn.Module):
    """A conv's output plus its own channel means (1 × C × 1 × 1): a broadcasting add, as in SE blocks."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        y = self.conv(x)
        return y + self.conv2(y).mean(dim=(2, 3), keepdim=True)


def broadcast_spec() -> ModelSpec:
    torch.manual_seed(0)
    batches = [(torch.randn(1, 3, 8, 8),) for _ in range(3)]
    return ModelSpec("broadcast_add", BroadcastAdd().eval(), batches[0], calibration_batches=batches[:2],
                     eval_batches=[(batches[2], None)])


def failed_then_fixed(spec, config: PipelineConfig, stage: str, **kw) -> tuple:
    """Run ``config``: ``stage`` fails with a fix; run it again with the fix applied: (error, fixed pipeline)."""
    pipe = Pipeline(spec(), config, **kw).run()
    err = pipe.results[stage].error
    assert err is not None and err.fix, pipe.failed and pipe.failed.error
    fixed = Pipeline(spec(), config.with_changes(**err.fix), **kw).run()
    assert fixed.results[stage].ok, fixed.failed and fixed.failed.error  # further than before
    return err, fixed


def test_xnnpack_group_size_hint_gets_past_delegate():
    config = PipelineConfig(flow="torchao", group_size=16, until="delegate")
    err, fixed = failed_then_fixed(mlp_spec, config, "delegate")
    assert "groups of a multiple of 32" in err.message and err.fix == {"group_size": 32}
    assert sum(n.kind == "delegate" for n in fixed.results["delegate"].graph.nodes) >= 1
    # the hint's other way, per-channel weights, gets past the delegate stage too
    per_channel = Pipeline(mlp_spec(), config.with_changes(group_size=0)).run()
    assert per_channel.results["delegate"].ok, per_channel.failed and per_channel.failed.error


def test_torchaos_affine_ops_get_past_emit_when_delegated():
    err, fixed = failed_then_fixed(mlp_spec, PipelineConfig(flow="torchao", partitioner="none", until="emit"), "emit")
    assert "torchao::dequantize_affine" in err.message and err.fix == {"partitioner": "auto"}
    assert fixed.pte_bytes()[4:8] == b"ET12"


def test_fx_add_relu_gets_past_emit_with_quantviz_fusion():
    err, fixed = failed_then_fixed(lambda: load_model("sample:conv_add"), PipelineConfig(flow="fx", until="emit"),
                                   "emit")
    assert "quantized_decomposed::add_relu" in err.message and err.fix == {"fusion": "quantviz"}
    assert fixed.pte_bytes()[4:8] == b"ET12"


def test_float_zero_point_embedding_runs_with_executorch_fusion(flow):
    err = flow("sample:embedding", flow="fx", fusion="none").results["run"].error  # as test_quantviz_fusion's
    assert "float zero points" in err.message and err.fix == {"fusion": "executorch"}
    fixed = flow("sample:embedding", flow="fx", fusion="executorch")
    assert fixed.ok, fixed.failed and fixed.failed.error
    assert fixed.numerics()["reference_vs_runtime_sqnr_db"] > 20
    assert "--flow pt2e" in err.hint  # the hint's other way
    other = flow("sample:embedding", flow="pt2e")
    assert other.ok, other.failed and other.failed.error


def test_a_broadcasting_quantized_add_runs_without_fusion():
    err, fixed = failed_then_fixed(broadcast_spec, PipelineConfig(flow="fx"), "run")
    assert "quantized_decomposed::add" in err.message and "(1, 8, 1, 1)" in err.message
    assert err.fix == {"fusion": "none"}
    assert fixed.ok and fixed.numerics()["reference_vs_runtime_sqnr_db"] > 20
    assert "--flow pt2e" in err.hint  # the hint's other way
    other = Pipeline(broadcast_spec(), PipelineConfig(flow="pt2e")).run()
    assert other.ok, other.failed and other.failed.error


def test_fx_delegate_refused_by_xnnpack_gets_past_delegate_under_pt2e():
    """A stage's own remedy, not the table's: ``--flow fx --backend xnnpack`` (fx chosen: XNNPACK's declared default
    flow, pt2e, is not applied) runs the fx flow, whose reference program XNNPACK's partitioner refuses on
    MobileNetV2 (docs/backends.md, 'Default flags on every backend'); the fx delegate stage offers ``--flow pt2e``
    first, which delegates the model, and ``--partitioner none`` after it."""
    config = PipelineConfig(flow="fx", backend="xnnpack", until="delegate")
    err, fixed = failed_then_fixed(lambda: load_model("sample:mobilenet_v2"), config, "delegate", explicit={"flow"})
    assert "dependency cycles" in err.message and err.fix == {"flow": "pt2e"}
    assert "--flow pt2e" in err.hint and "--partitioner none" in err.hint
    assert sum(n.kind == "delegate" for n in fixed.results["delegate"].graph.nodes) >= 1


def test_an_untraceable_decoder_gets_pt2e_not_a_skip_of_the_whole_model():
    """A stage's own remedy: zoo_llama's decoder ('model', every weight: the head is tied to the embedding) builds
    its causal mask with ``torch.finfo(dtype)``, which symbolic tracing cannot follow. Skipping it would leave nothing
    quantized, so the fix is ``--flow pt2e`` (torch.export follows the example input), which traces and prepares
    the whole decoder; ``--skip-untraceable`` stays in the words as the other way."""
    config = PipelineConfig(flow="fx", until="prepare")
    err, fixed = failed_then_fixed(lambda: load_model("sample:zoo_llama"), config, "trace")
    assert err.fix == {"flow": "pt2e"}
    assert "keep 100% of the model's weights float (module(s) model)" in err.hint and "--skip-untraceable" in err.hint
    linears = [n for n in fixed.results["trace"].graph.nodes if n.target == "aten.linear.default"]
    assert len(linears) == 2 * 7 + 1  # two layers' q/k/v/o/gate/up/down and the head: the decoder is traced
    observed = [n for n in fixed.results["prepare"].graph.nodes if n.kind == "observer"]
    assert len(observed) > len(linears)  # prepared: the decoder's linears are observed, not a float leaf


def test_a_small_untraceable_module_keeps_the_skip_hint():
    from quantviz.stages.trace import skipped_weight_share
    err = Pipeline(load_model("sample:not_traceable"), PipelineConfig(flow="fx")).run().results["trace"].error
    assert err.fix == {"skip_untraceable": True}
    spec = load_model("sample:not_traceable")
    assert skipped_weight_share(spec.model, ("pad",)) < 0.5
    assert skipped_weight_share(load_model("sample:zoo_llama").model, ("model",)) == 1.0


def test_a_dependency_cycle_in_qwen3s_qk_norm_gets_past_per_op():
    """zoo_qwen3 (Qwen3's RMSNorm on each head's queries and keys) under the decoders' PT2E remedy, dynamic and
    per-channel: XNNPACK's partitioner forms a delegate with a cycle at the k_norm's pow (issue 31: the old hint,
    --partitioner none, only showed the graph). Per-op delegates get past delegate with the linears delegated."""
    config = SEQUENCE_CONFIGS["pt2e dynamic --keep-integer-scalars"].with_changes(until="delegate")
    err, fixed = failed_then_fixed(lambda: load_model("sample:zoo_qwen3"), config, "delegate")
    assert "dependency cycles" in err.message and "k_norm" in (err.message + str(err.site))
    assert err.fix == {"delegate_granularity": "op"} and "--delegate-granularity op" in err.hint
    delegates = [n for n in fixed.results["delegate"].graph.nodes if n.kind == "delegate"]
    assert len(delegates) >= 2 * 7  # one per op: at least every linear of the two layers


class MeanAffineHead(nn.Module):
    """LeViT's head in small (sample_models/zoo_levit.py, ``NormLinear``): the tokens' mean, a per-channel scale and
    shift (the BatchNorm1d, written out so convert_pt2e does not spend 20 s on its conv-bn patterns), then a linear."""

    def __init__(self, dim: int = 96):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim).uniform_(0.5, 1.5))
        self.bias = nn.Parameter(torch.empty(dim).uniform_(-0.1, 0.1))
        self.linear = nn.Linear(dim, 10)

    def forward(self, x):
        return self.linear(x.mean(1) * self.weight + self.bias)


def mean_affine_spec() -> ModelSpec:
    torch.manual_seed(0)
    model = MeanAffineHead().eval()
    batches = [(torch.randn(1, 4, 96),) for _ in range(6)]
    return ModelSpec("mean_affine_head", model, batches[0], calibration_batches=batches[:4],
                     eval_batches=[(batches[4], None), (batches[5], None)])


def test_openvinos_wrong_output_hint_runs_without_the_delegate_and_matches():
    """OpenVINO's delegate computes LeViT's head (token mean, per-channel affine, linear) wrongly: 11 dB against the
    reference q/dq model (zoo_levit: 2.3 dB). The run stage's hint, ``--partitioner none``, runs the same quantized
    model on the portable kernels; it used to abort in ``quantize_per_channel`` (float32 scales of the unfolded
    weights OpenVINO's delegate needs), and now convert_pt2e folds them when nothing is delegated, so it runs and
    matches the reference: the delegate is the cause, as the hint says."""
    pytest.importorskip("openvino")
    config = PipelineConfig(flow="pt2e", per_channel=True, backend="openvino")
    err, fixed = failed_then_fixed(mean_affine_spec, config, "run")
    assert "does not match the reference quantized model" in err.message and err.fix == {"partitioner": "none"}
    assert err.metrics["reference_vs_runtime_sqnr_db"] < 15  # 11.0 here
    assert err.metrics["float_vs_reference_sqnr_db"] > 30  # 38.6: the quantized model itself is fine
    assert fixed.ok and fixed.numerics().reference_vs_runtime_sqnr_db > 60  # 133.4: the portable kernels match
    assert fixed.results["convert"].calls[-1] == "reference = convert_pt2e(observed)"
    assert any("fold_quantize=False is for its delegate" in n for n in fixed.results["convert"].notes)


def test_openvinos_wrong_output_is_openvinos_low_precision_transformations():
    """Why the hint above is a diagnosis and not a remedy quantviz could apply: OpenVINO alone, without ExecuTorch or
    quantviz (``openvino.convert_model`` of the q/dq program convert_pt2e made, compiled for CPU), computes LeViT's
    head as wrongly (10 dB against the q/dq model); with its CPU plugin's low-precision transformations off
    (``LP_TRANSFORMS_MODE=False``) it matches (45 dB). ExecuTorch 1.5's OpenVINO backend passes each compile spec to
    ``openvino_compile`` as a string, so that plugin setting cannot be given through ``OpenvinoPartitioner``: no config
    change reaches it."""
    ov = pytest.importorskip("openvino")
    from executorch.backends.openvino.quantizer import OpenVINOQuantizer, QuantizationMode
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    spec = mean_affine_spec()
    prepared = prepare_pt2e(torch.export.export(spec.model, spec.example_inputs).module(),
                            OpenVINOQuantizer(mode=QuantizationMode.INT8_SYM))
    for batch in spec.calibration_batches:
        prepared(*batch)
    qdq = convert_pt2e(prepared, fold_quantize=False)  # the program OpenVINO's delegate is given
    x = spec.eval_batches[0][0][0]
    reference = qdq(x)
    model = ov.convert_model(torch.export.export(qdq, (x,)))

    def sqnr(config: dict) -> float:  # float32 inference: the CPU plugin's default is bfloat16 where the CPU has it
        config = {"INFERENCE_PRECISION_HINT": "f32", **config}
        out = torch.from_numpy(ov.Core().compile_model(model, "CPU", config)(x.numpy())[0])
        return (10 * torch.log10(reference.pow(2).mean() / (reference - out).pow(2).mean())).item()

    assert sqnr({}) < 15  # 9.9 dB: OpenVINO's own output, no ExecuTorch in the way
    assert sqnr({"LP_TRANSFORMS_MODE": False}) > 35  # 45.1 dB: its low-precision transformations are the cause


def test_openvinos_convert_options_apply_only_when_its_delegate_lowers():
    """Fast: the rule the hint above relies on, and that changing the partitioner re-runs convert with it."""
    ov = PipelineConfig(flow="pt2e", backend="openvino")
    assert convert_options(ov) == {"fold_quantize": False}
    assert convert_options(ov.with_changes(partitioner="none")) == {}
    assert convert_options(PipelineConfig(flow="pt2e", backend="xnnpack")) == {}
    convert = flow_of(ov).stage("convert")
    assert convert.signature(ov) != convert.signature(ov.with_changes(partitioner="none"))
    assert "partitioner" in convert.reads_under(ov)
    xnnpack = PipelineConfig(flow="pt2e", backend="xnnpack")
    assert convert.signature(xnnpack) == convert.signature(xnnpack.with_changes(partitioner="none")) == ()


def test_a_runtime_abort_suggests_partitioner_none_only_when_something_is_delegated():
    died = WorkerDied("the ExecuTorch runtime", -6, ["[op_quantize.cpp:427] assert failed"])
    delegated = died_error(died, None, PipelineConfig(flow="pt2e", backend="openvino"))
    assert "--partitioner none" in delegated.hint and not delegated.fix
    portable = died_error(died, None, PipelineConfig(flow="pt2e", backend="openvino", partitioner="none"))
    assert "--partitioner none" not in portable.hint and "a portable kernel aborted" in portable.hint
    assert "op_quantize.cpp:427" in portable.message


def test_float32_scale_quantize_per_channel_is_named_before_it_aborts_the_runtime(monkeypatch):
    """The preflight's third check: the program ``--partitioner none`` made before convert folded OpenVINO's weights
    (``fold_quantize=False`` kept, nothing delegated) is recognised, and the runtime does abort on it, in the portable
    ``quantize_per_channel`` kernel; folded, as convert now does without a delegate, it runs
    (test_openvinos_wrong_output_hint_runs_without_the_delegate_and_matches)."""
    pytest.importorskip("openvino")
    from quantviz.stages import convert_pt2e

    monkeypatch.setattr(convert_pt2e, "convert_options", lambda config: {"fold_quantize": False})
    config = PipelineConfig(flow="pt2e", per_channel=True, backend="openvino", partitioner="none")
    pipe = Pipeline(mean_affine_spec(), config).run()
    err = pipe.results["run"].error
    assert err is not None and "SIGABRT" in err.message
    assert re.search(r"the known cause: \w*quantize_per_channel\w* quantizes \w*linear_weight per channel at run time "
                     r"with float32 scales", err.message), err.message
    assert "fold_quantize=True" in err.hint and not err.fix
    assert any("quantize_per_channel_out" in line for line in err.log)  # the runtime's own words agree
