"""Real architectures (sample_models/zoo_*): quantviz reaches `run` whenever the bare torch/executorch calls do,
on the same model in the same process; when neither does, quantviz's message names the cause."""
import pytest

from quantviz import load_model
from quantviz.parity import STANDARD_CONFIGS, check_parity
from sample_models import ZOO

pytestmark = pytest.mark.e2e

# CI runs the main configuration on every zoo model and each other configuration on the model it matters most for
# (to_backend: LeViT's 3-D linears; quantviz fusion: a deep CNN; fx: TF padding helpers, and ConvNeXt's broadcasting
# adds that would abort the runtime). The rest is marked slow: `make test-all` and bench/zoo.py run every pair.
IN_CI = {("zoo_levit", "pt2e + xnnpack (to_backend)"), ("zoo_inverted_residual", "pt2e + quantviz fusion"),
         ("zoo_tf_mobilenet", "fx --skip-untraceable"), ("zoo_convnext", "fx --skip-untraceable")}
CASES = [pytest.param(model, name, id=f"{model}-{name}",
                      marks=() if name == "pt2e + xnnpack" or (model, name) in IN_CI else pytest.mark.slow)
         for model in ZOO for name in STANDARD_CONFIGS]


@pytest.mark.parametrize(("model", "config_name"), CASES)
def test_quantviz_reaches_run_whenever_the_bare_calls_do(model, config_name):
    row = check_parity(lambda: load_model(f"sample:{model}"), STANDARD_CONFIGS[config_name])
    assert not row.regression, f"bare calls ran, quantviz failed: {row.quantviz_failure}"
    if row.same_lowering is not None:  # transform_and_lower: the same delegates as the bare call
        assert row.same_lowering, (row.quantviz_delegates, row.bare_delegates)
    if row.quantviz_ok and row.reference_vs_runtime_sqnr_db is not None:
        assert row.runtime_error_over_quantization_error_db <= 10  # drift, reported, never failed
    if not row.quantviz_ok:
        assert len(row.quantviz_failure) > 40  # a cause in words, not a bare exception name
        if row.bare_failure.startswith(("prepare", "calibrate", "convert", "lower")):  # a graph pass failed
            assert " in module " in row.quantviz_failure_site or " in module " in row.quantviz_failure, row
