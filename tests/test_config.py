import dataclasses

import pytest

from quantviz.backends import backend_name, backend_of, normalize, partitioner_choices
from quantviz.config import ConfigError, PipelineConfig, config_flags
from quantviz.flows import FLOWS, applies_to, flow_of


def test_defaults_match_the_documented_ones():
    c = PipelineConfig()
    assert (c.flow, c.mode, c.per_channel, c.backend, c.partitioner, c.fusion, c.until) == \
        ("fx", "static", False, "auto", "auto", "executorch", "run")
    assert backend_name(c) == "portable"  # backend="auto" under fx: the fx flow's default_backend
    assert [backend_name(PipelineConfig(flow=f)) for f in ("pt2e", "torchao", "qat")] == ["portable", "xnnpack",
                                                                                        "xnnpack"]
    recipe = PipelineConfig(recipe="xnnpack_fp32")  # the recipe names its backend (recipe_backend)
    assert (backend_name(recipe), backend_of(recipe).name) == ("recipe", "xnnpack")


def test_the_seed_flows_have_the_ten_stages_in_order():
    names = ("trace", "prepare", "calibrate", "convert", "capture", "edge", "delegate", "fuse", "emit", "run")
    assert FLOWS["fx"].names == FLOWS["pt2e"].names == names


@pytest.mark.parametrize("field,value", [("flow", "tflite"), ("partitioner", "qnn"), ("backend", "tpu"),
                                         ("mode", "qat"), ("calibration_batches", 0), ("scheme", "int3"),
                                         ("quantize_embeddings", 2), ("held_out", -1)])
def test_bad_values_are_refused_with_the_allowed_ones(field, value):
    """A field's choices are checked by the config; the flow's name by the flows' registry (a flow is a file)."""
    with pytest.raises(ConfigError) as e:
        flow_of(PipelineConfig(**{field: value}))
    assert field in str(e.value)


def test_until_must_be_a_stage_of_the_flow():
    with pytest.raises(ConfigError, match="until='deploy' is not a stage of the fx flow"):
        flow_of(PipelineConfig(until="deploy"))


@pytest.mark.parametrize("fusion", ["none", "executorch", "quantviz", "both"])
def test_every_fusion_choice_is_accepted(fusion):
    assert PipelineConfig(fusion=fusion).fusion == fusion


def test_partitioner_xnnpack_is_backend_xnnpack():
    """One config for one meaning: the legacy --partitioner xnnpack becomes --backend xnnpack (XNNPACK's record:
    ``Backend.partitioner_choice``), where configs are resolved and checked (``normalize``)."""
    legacy = PipelineConfig(flow="pt2e", partitioner="xnnpack")
    assert normalize(legacy) == PipelineConfig(flow="pt2e", backend="xnnpack")
    assert normalize(legacy.with_changes(backend="portable")) == PipelineConfig(flow="pt2e", backend="xnnpack")
    assert config_flags(normalize(legacy)) == "--flow pt2e --backend xnnpack"
    assert backend_of(legacy).name == "xnnpack"  # the alias resolves before normalizing too
    assert partitioner_choices() == ("auto", "none", "xnnpack", "demo")  # the CLI's, app's and sweep's choices
    with pytest.raises(ConfigError, match="partitioner='xnnpack' delegates to XNNPACK, but backend='openvino': use "
                                          "--backend xnnpack"):
        flow_of(PipelineConfig(flow="pt2e", backend="openvino", partitioner="xnnpack"))
    with pytest.raises(ConfigError, match="partitioner='demo' lowers conv -> add groups to XNNPACK"):
        flow_of(PipelineConfig(flow="pt2e", backend="vulkan", partitioner="demo"))
    with pytest.raises(ConfigError, match="flow='torchao' lowers to XNNPACK"):
        flow_of(PipelineConfig(flow="torchao", backend="arm-tosa"))


def test_a_recipe_is_the_recipe_flow_and_the_recipe_flow_needs_one():
    c = PipelineConfig(recipe="xnnpack_fp32")
    assert c.flow == "recipe" and config_flags(c) == "--recipe xnnpack_fp32"
    with pytest.raises(ConfigError, match="needs a recipe"):
        PipelineConfig(flow="recipe")


def test_options_say_which_flows_they_apply_to():
    assert applies_to("scheme", "torchao") and not applies_to("scheme", "pt2e")
    assert applies_to("held_out", "recipe") and applies_to("fusion", "fx") and not applies_to("fusion", "torchao")


def test_every_option_is_read_by_some_stage_of_a_flow_it_applies_to():
    """The derived tables agree: each field (but until) is declared by a stage record of each flow it applies to."""
    for f in dataclasses.fields(PipelineConfig):
        if f.name == "until":
            continue
        flows = [n for n in FLOWS if applies_to(f.name, n)]
        assert flows, f.name
        for name in flows:
            config = PipelineConfig(flow=name, recipe="xnnpack_fp32" if name == "recipe" else "",
                                    llm_config="llm.yaml" if name == "export_llm" else "")
            read = {r for s in flow_of(config).stages for r in s.reads_under(config)}
            assert f.name in read or f.name == "flow", (f.name, name)


def test_delegate_granularity_is_an_option_read_by_delegate_and_by_edge_under_transform_and_lower():
    pt2e = FLOWS["pt2e"]
    assert PipelineConfig().delegate_granularity == "graph"
    assert PipelineConfig(delegate_granularity="op").delegate_granularity == "op"
    with pytest.raises(ConfigError, match="delegate_granularity"):
        PipelineConfig(delegate_granularity="layer")
    assert "delegate_granularity" in pt2e.stage("delegate").reads
    assert "delegate_granularity" in pt2e.stage("edge").reads_under(PipelineConfig())
    assert "delegate_granularity" not in pt2e.stage("edge").reads_under(PipelineConfig(lowering="to_backend"))


def test_delegate_granularity_has_a_generated_cli_flag():
    from quantviz.cli import build_parser

    args = build_parser().parse_args(["compare", "sample:conv_add", "--delegate-granularity", "op"])
    assert args.delegate_granularity == "op"
    assert build_parser().parse_args(["run", "sample:conv_add"]).delegate_granularity == "graph"
