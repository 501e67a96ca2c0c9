import pytest

from quantviz.config import STAGE_DEPENDS_ON, STAGES, ConfigError, PipelineConfig


def test_defaults_match_the_documented_ones():
    c = PipelineConfig()
    assert (c.flow, c.mode, c.per_channel, c.partitioner, c.fusion, c.until) == \
        ("fx", "static", False, "none", "executorch", "run")


def test_stage_names_are_fixed_and_in_order():
    assert STAGES == ("trace", "prepare", "calibrate", "convert", "capture", "edge", "delegate", "fuse", "emit",
                      "run")
    assert list(STAGE_DEPENDS_ON) == list(STAGES)


@pytest.mark.parametrize("field,value", [("flow", "tflite"), ("partitioner", "qnn"), ("until", "deploy"),
                                         ("mode", "qat"), ("calibration_batches", 0)])
def test_bad_values_are_refused_with_the_allowed_ones(field, value):
    with pytest.raises(ConfigError) as e:
        PipelineConfig(**{field: value})
    assert field in str(e.value)


@pytest.mark.parametrize("fusion", ["none", "executorch", "quantviz", "both"])
def test_every_fusion_choice_is_accepted(fusion):
    assert PipelineConfig(fusion=fusion).fusion == fusion
