"""Figures and words a person reads (quantviz.measure.readable, quantviz.data, the inspector): labels with units,
"bit-exact" for an infinite SQNR, accuracy left to the headline, the flow's own activation dtype, SQNR levels for
the scheme, and flows that calibrate nothing not said to flatter the model. What a flow computes in and whether it
calibrates are its record's (``Flow.precision``, ``Flow.calibrates``)."""
from __future__ import annotations

import math

import pytest

from quantviz import PipelineConfig
from quantviz.data import EvaluationData
from quantviz.flows import flow_of
from quantviz.measure.readable import Precision, format_value, readable_numerics, sqnr_levels

NUMERICS = {"float_vs_reference_sqnr_db": 35.30, "float_vs_runtime_sqnr_db": 35.29,
            "reference_vs_runtime_sqnr_db": math.inf, "reference_vs_runtime_max_lsb": 0.0,
            "reference_vs_runtime_share_ge_1_lsb": 0.0, "float_accuracy": 0.987, "runtime_accuracy": 0.987,
            "runtime_error_over_quantization_error_db": -math.inf}


def test_run_figures_have_labels_units_and_no_infinities_and_no_accuracy():
    rows = readable_numerics(NUMERICS, Precision("int8", 8))
    table = {r.label: (r.value, r.meaning) for r in rows}
    assert table["SQNR, float vs reference quantized model (the quantization error)"] == (
        "35.3 dB", "good for int8 (rule of thumb: ≥ 30 dB good, 20–30 fair, below 20 poor)")
    assert table["SQNR, reference vs the program as run (what lowering added)"][0] == "bit-exact"
    assert table["error the run adds, relative to the quantization error"][0] == "none: the run is bit-exact"
    assert table["outputs that differ by 1 LSB or more, reference vs run"][0] == "0.0 %"
    assert table["largest output difference, reference vs run"][0] == "0 LSB"
    text = repr(rows)
    assert "inf" not in text.lower().replace("information", "") and "_db" not in text and "accuracy" not in text


def test_values_and_levels():
    assert format_value("float_vs_runtime_sqnr_db", 21.08) == "21.1 dB"
    assert format_value("reference_vs_runtime_sqnr_db", -math.inf) == "no signal in common"
    assert format_value("float_vs_runtime_sqnr_db", math.nan) == "not measured"
    assert format_value("runtime_error_over_quantization_error_db", -22.79) == "-22.8 dB"
    assert sqnr_levels(precision(PipelineConfig(flow="torchao", scheme="8da4w"))).judge(21.1).startswith(
        "good for 8-bit activations with 4-bit weights")
    assert sqnr_levels(precision(PipelineConfig(flow="torchao", scheme="8da8w"))).judge(21.1).startswith(
        "fair for int8")
    assert sqnr_levels(precision(PipelineConfig(recipe="xnnpack_torchao_int8da_int4w_per_channel"))).scheme == \
        "8-bit activations with 4-bit weights"
    assert sqnr_levels(precision(PipelineConfig(flow="pt2e"))).judge(21.1).startswith("fair for int8")
    assert sqnr_levels(precision(PipelineConfig(flow="fx"))).judge(15.0).startswith("poor for uint8")
    assert sqnr_levels(precision(PipelineConfig(flow="pt2e", backend="arm-tosa", activation_bits=16))).judge(
        35.0).startswith("fair for 16-bit activations with 8-bit weights")


def precision(config: PipelineConfig) -> Precision:
    return flow_of(config).precision(config)


@pytest.mark.parametrize("config, dtype", [(PipelineConfig(flow="fx"), "uint8"), (PipelineConfig(flow="pt2e"), "int8"),
                                           (PipelineConfig(flow="torchao"), "int8"),
                                           (PipelineConfig(recipe="arm_tosa_a16w8"), "int16")])
def test_the_activation_dtype_is_the_flows_own(config, dtype):
    assert precision(config).activations == dtype


@pytest.mark.parametrize("config, calibrated", [
    (PipelineConfig(flow="fx"), True), (PipelineConfig(flow="pt2e"), True),
    (PipelineConfig(flow="pt2e", mode="dynamic"), False), (PipelineConfig(flow="torchao"), False),
    (PipelineConfig(recipe="xnnpack_torchao_int8da_int4w_per_channel"), False),
    (PipelineConfig(recipe="xnnpack_pt2e_int8_dynamic_per_channel"), False),
    (PipelineConfig(recipe="xnnpack_pt2e_int8_static_per_tensor"), True)])
def test_only_flows_that_calibrate_say_their_figures_flatter_the_model(config, calibrated):
    assert flow_of(config).calibrates(config) is calibrated
    words = EvaluationData([()], [None], "calibration", calibrated=calibrated).describe()
    assert ("observers saw" in words) is calibrated and ("calibrates nothing" in words) is (not calibrated)


def test_dynamic_activations_say_their_qparams_are_computed_at_run_time(flow):
    from ui.inspector import qparams_rows

    pipe = flow("sample:mlp_dynamic", flow="pt2e", mode="dynamic", until="convert")
    dynamic = [n for n in pipe.results["convert"].graph.nodes if n.kind == "quantize" and n.qparams is not None
               and n.qparams.scale is None]
    assert dynamic, "the dynamic activations' quantize nodes"
    for node in dynamic:
        rows = {r["field"]: r["value"] for r in qparams_rows(node)}
        assert rows["scale"] == rows["zero point"] == "computed at run time"


def test_a_long_stage_shows_its_progress_and_how_long_it_has_run():
    from quantviz.background import RunState
    from ui.runner import progress_text

    states = {"trace": "done", "delegate": "running", "emit": "waiting"}
    assert progress_text(RunState(states, True, "delegate", 0.4, "partition 3/7", stage_elapsed=95.4)) == \
        "running: **delegate** (partition 3/7, 95 s) · waiting: emit"
    assert progress_text(RunState(states, True, "delegate", stage_elapsed=312.0)) == \
        "running: **delegate** (312 s) · waiting: emit"
    assert progress_text(RunState(states, True, "delegate", stage_elapsed=0.3)) == \
        "running: **delegate** · waiting: emit"
