"""Every hint of the known-issues table (``quantviz.known_issues.KNOWN_ISSUES`` and the runtime preflight's two
checks) on a model that triggers it: the stage fails with the hint's fix as data, and with the fix applied the same
model gets past that stage. A hint that does not get further is not given.

Three hints are covered where their backend or stage is tested in depth (listed in ``ELSEWHERE``): Arm's guard
submodule and Vulkan's per-channel weights (tests/test_backends.py), XNNPACK's ConvertToLinearPass
(tests/test_failure_causes.py).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from quantviz import ModelSpec, Pipeline, PipelineConfig, load_model
from quantviz.known_issues import KNOWN_ISSUES

pytestmark = pytest.mark.e2e

# (stage, fix) of each hint -> the test that shows it gets further on a model that triggers it
COVERED = {
    ("delegate", (("group_size", 32),)): "test_xnnpack_group_size_hint_gets_past_delegate",
    ("emit", (("partitioner", "auto"),)): "test_torchaos_affine_ops_get_past_emit_when_delegated",
    ("emit", (("fusion", "quantviz"),)): "test_fx_add_relu_gets_past_emit_with_quantviz_fusion",
    ("run", (("fusion", "executorch"),)): "test_float_zero_point_embedding_runs_with_executorch_fusion",
    ("run", (("fusion", "none"),)): "test_a_broadcasting_quantized_add_runs_without_fusion",
}
ELSEWHERE = {
    ("delegate", (("per_channel", True),)):
        "tests/test_backends.py::test_vulkans_per_tensor_conv_assert_is_named_with_its_fix",
    ("prepare", (("check_guards", False),)):
        "tests/test_backends.py::test_an_arm_pass_that_cannot_run_the_guards_is_named_with_its_remedy",
    ("delegate", (("lowering", "transform_and_lower"),)):
        "tests/test_failure_causes.py::test_convert_to_linear_pass_failure_at_delegate_names_the_inner_cause_and_the_linear",
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
