"""QAT's qparams at export against those in training (quantviz/stages/qat_qparams.py), on real QAT runs: torchao QAT
agrees to the bit; torchao's two-step convert drops range learning's learned scales. PT2E QAT's weight scales, which
differ between training's fused kernel and convert_pt2e (pytorch/ao#4824), are tested in test_qat.py on the run that
test already makes."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from quantviz import Pipeline, PipelineConfig, load_model
from quantviz.outputs import summary
from quantviz.stages.qat_qparams import SCALE_TOLERANCE, compare_torchao


@pytest.fixture(scope="module")
def mlp():
    return load_model("sample:mlp_dynamic")


def test_torchao_qat_qparams_at_export_are_training_s(mlp):
    """8da4w, 6 fine-tuning steps: every weight's scales and integers at export are the fake quantizer's, and the
    scales are max|w| / 7.5 per group of 32 of the fine-tuned weights (int4 symmetric)."""
    pipe = Pipeline(mlp, PipelineConfig(flow="qat", qat_steps=6, qat_lr=1e-3, until="convert_qat")).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    result = pipe.results["convert_qat"]
    comparison = result.diagnostics.qat_qparams
    weights = [c for c in comparison.checks if c.tensor == "weight"]
    assert [c.node for c in weights] == ["fc1", "fc2", "fc3"]
    trained = pipe.results["train"].artifact.model
    converted = result.artifact
    for check in weights:
        assert check.max_scale_rel_diff == 0.0 and check.max_zero_point_diff == 0 and check.values_differ == 0
        w = dict(trained.named_modules())[check.node].weight.detach()
        assert check.values == w.numel() and check.scales == w.numel() // 32
        # the fine-tuned weights (not the float ones) set the scales: max |w| / 7.5 in each group of 32
        expected = w.reshape(w.shape[0], -1, 32).abs().amax(-1) / 7.5
        stored = dict(converted.named_modules())[check.node].weight.scale
        assert torch.allclose(stored.reshape(expected.shape), expected, rtol=1e-6)
        assert not torch.equal(w, dict(mlp.model.named_modules())[check.node].weight)
    acts = [c for c in comparison.checks if c.tensor == "activation"]
    assert len(acts) == 3 and all(not c.compared and not c.mismatch and "run time" in c.note for c in acts)
    assert acts[0].export == "int8 asymmetric per token, at run time"
    assert not comparison.mismatched() and comparison.max_scale_rel_diff == 0.0
    assert result.metrics["qat_qparams_mismatched"] == 0 and result.metrics["qat_qparams_values_differ"] == 0
    assert any(n.startswith("qparams at export agree with training's: 3 fake quantizer(s) compared, scales differ "
                            "by at most 0") and "17,024 weight values" in n for n in result.notes)
    data = summary(pipe)["qat_qparams"]
    assert data["agree"] is True and data["max_scale_rel_diff"] == 0.0 and data["mismatched"] == []
    frame = comparison.to_dataframe()  # one row per weight and activation
    assert list(frame["node"]) == ["fc1", "fc1", "fc2", "fc2", "fc3", "fc3"] and not frame["mismatch"].any()


def test_the_two_step_convert_drops_range_learning_s_learned_scales(mlp):
    """Range learning (IntxFakeQuantizeConfig(is_dynamic=False, range_learning=True)): QATConfig(base_config,
    step="convert") passes the learned scales to the quantized weights; the two-step form torchao's docstring shows
    for custom fake-quantize configs (QATConfig(step="convert"), then quantize_ with the PTQ config) recomputes them
    from min/max, and the comparison names every linear with the difference."""
    from torchao.quantization import quantize_
    from torchao.quantization.qat import IntxFakeQuantizeConfig, QATConfig, initialize_fake_quantizers

    from quantviz.stages.qat import fine_tune
    from quantviz.stages.quantize import linear_config

    config = PipelineConfig(flow="qat", qat_steps=6, qat_lr=1e-3)
    model = copy.deepcopy(mlp.model)
    weight = IntxFakeQuantizeConfig(torch.int4, group_size=32, is_dynamic=False, range_learning=True)
    quantize_(model, QATConfig(activation_config=IntxFakeQuantizeConfig(torch.int8, "per_token", is_symmetric=False),
                               weight_config=weight, step="prepare"), filter_fn=lambda m, f: isinstance(m, nn.Linear))
    initialize_fake_quantizers(model, mlp.example_inputs)
    fine_tune(model, mlp, config)
    base, _ = linear_config(config)
    kept = copy.deepcopy(model)
    quantize_(kept, QATConfig(base, step="convert"))
    dropped = copy.deepcopy(model)
    quantize_(dropped, QATConfig(step="convert"))
    quantize_(dropped, base, filter_fn=lambda m, f: isinstance(m, nn.Linear))

    agree = compare_torchao(model, kept)
    assert not agree.mismatched() and agree.max_scale_rel_diff == 0.0 and agree.values_differ == 0
    assert "learned (range learning)" in agree.checks[0].training

    differ = compare_torchao(model, dropped, convert="QATConfig(step='convert'), then quantize_")
    assert sorted(c.node for c in differ.mismatched()) == ["fc1", "fc2", "fc3"]
    for check in differ.mismatched():
        learned = dict(model.named_modules())[check.node].weight_fake_quantizer.scale.detach()
        recomputed = dict(dropped.named_modules())[check.node].weight.scale
        expected = ((learned.reshape(recomputed.shape) - recomputed).abs() / recomputed).max().item()
        assert check.max_scale_rel_diff == pytest.approx(expected, rel=1e-6) and expected > 100 * SCALE_TOLERANCE
        assert 0 < check.values_differ < check.values
    notes = differ.notes()
    assert notes[0].startswith("qparams at export differ from training's at 3 of 6 fake quantizer(s)")
    worst = differ.mismatched()[0]
    assert notes[1].startswith(f"  {worst.node} (weight, {worst.node}.weight): scale differs by up to ")
    assert f"{worst.values_differ:,} of {worst.values:,} integer values differ" in notes[1]


def test_a_convert_config_other_than_the_qat_config_is_named_per_linear(mlp):
    """A deliberate mismatch (the QAT config's groups of 32, a convert config per channel; or weight-only int8 at
    convert): the scales cannot be compared one to one, so each linear says why, with the integers that differ."""
    from torchao.quantization import quantize_
    from torchao.quantization.qat import QATConfig

    from quantviz.stages.qat import fake_quantized, fine_tune
    from quantviz.stages.quantize import linear_config

    config = PipelineConfig(flow="qat", qat_steps=2)
    trained = fake_quantized(mlp.model, config)
    fine_tune(trained, mlp, config)
    for other, problem in ((config.with_changes(group_size=0), "granularity: training per group 32, export per "
                                                                "channel"),
                           (config.with_changes(scheme="int8-weight-only"), "range: training int4 [-8, 7]")):
        converted = copy.deepcopy(trained)
        quantize_(converted, QATConfig(step="convert"))
        quantize_(converted, linear_config(other)[0], filter_fn=lambda m, f: isinstance(m, nn.Linear))
        comparison = compare_torchao(trained, converted)
        weights = [c for c in comparison.checks if c.tensor == "weight"]
        assert [c.node for c in weights if c.mismatch] == ["fc1", "fc2", "fc3"]
        assert all(problem in c.problem and c.max_scale_rel_diff is None and 0 < c.values_differ <= c.values
                   for c in weights)
        assert comparison.notes()[1].startswith("  fc")
    acts = [c for c in comparison.checks if c.tensor == "activation"]  # weight-only int8: activations stay float
    assert [c.problem for c in acts] == ["training fake-quantized this input (int8 asymmetric per token) and export "
                                         "leaves it float"] * 3
