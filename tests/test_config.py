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


def test_delegate_granularity_is_an_option_read_by_delegate_and_by_edge_under_transform_and_lower():
    from quantviz.config import stage_reads

    assert PipelineConfig().delegate_granularity == "graph"
    assert PipelineConfig(delegate_granularity="op").delegate_granularity == "op"
    with pytest.raises(ConfigError, match="delegate_granularity"):
        PipelineConfig(delegate_granularity="layer")
    assert "delegate_granularity" in STAGE_DEPENDS_ON["delegate"]
    assert "delegate_granularity" in stage_reads("edge", PipelineConfig())
    assert "delegate_granularity" not in stage_reads("edge", PipelineConfig(lowering="to_backend"))


def test_delegate_granularity_has_a_generated_cli_flag():
    from quantviz.cli import build_parser

    args = build_parser().parse_args(["compare", "sample:conv_add", "--delegate-granularity", "op"])
    assert args.delegate_granularity == "op"
    assert build_parser().parse_args(["run", "sample:conv_add"]).delegate_granularity == "graph"
