"""The recipe flow: quantviz calls executorch.export.export itself and shows every stage of the ExportSession with
the session's own durations; the .pte is the bare recipe call's, byte for byte."""
import pytest

from quantviz import Pipeline, PipelineConfig, load_model
from quantviz.backends import all_recipes
from quantviz.bare_flow import run_bare
from quantviz.config import ConfigError
from quantviz.flows import flow_of

pytestmark = pytest.mark.e2e
RECIPE = "xnnpack_torchao_int8da_int4w_per_channel"


def test_every_xnnpack_recipe_is_offered():
    from executorch.backends.xnnpack.recipes import XNNPackRecipeType

    assert {t.value for t in XNNPackRecipeType} <= set(all_recipes())
    with pytest.raises(ConfigError, match="no export recipe named 'nope'"):
        flow_of(PipelineConfig(recipe="nope"))


def test_the_session_stages_are_the_rail_with_their_own_durations_and_the_pte_is_the_bare_calls():
    config = PipelineConfig(recipe=RECIPE)
    assert flow_of(config).names == ("source_transform", "quantize", "torch_export", "to_edge_transform_and_lower",
                                     "to_executorch", "run")
    pipe = Pipeline(load_model("sample:mlp_dynamic"), config).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    session = pipe.results["source_transform"].artifact.session
    durations = {getattr(k, "value", k): a.get_context("duration_ms") for k, a in
                 session.get_stage_artifacts().items()}
    for name in ("torch_export", "to_edge_transform_and_lower", "to_executorch"):
        r = pipe.results[name]
        assert r.timed_by == "ExportSession" and r.seconds == (  # 0 ms recorded: under 1 ms, no duration shown
            pytest.approx(durations[name] / 1000.0) if durations[name] else None)
    assert not any(n.endswith(": 0 ms") for r in pipe.results.values() for n in r.notes)
    table = pipe.results["source_transform"].table
    assert len(table) == 3  # the three linears quantize_ rewrote, each with the recipe's config (not "?")
    assert {row.config for row in table} == {"Int8DynamicActivationIntxWeightConfig(weight_dtype=int4, "
                                             "weight_granularity=PerAxis(axis=0), act_mapping_type=ASYMMETRIC)"}
    assert "nothing to do for this recipe" in " ".join(pipe.results["quantize"].notes)  # no pt2e quantizers
    assert pipe.results["to_edge_transform_and_lower"].graph.kind_counts().get("delegate") == 1
    assert "export(model, samples, recipe)" in "\n".join(pipe.results["source_transform"].calls)
    bare = run_bare(load_model("sample:mlp_dynamic"), config)
    assert bare.ok and bare.pte == pipe.pte_bytes()
    assert pipe.numerics()["reference_vs_runtime_sqnr_db"] > 30


def test_a_static_pt2e_recipe_calibrates_on_the_samples_and_shows_its_quantize_stage():
    pipe = Pipeline(load_model("sample:conv_add"), PipelineConfig(recipe="xnnpack_pt2e_int8_static_per_tensor")).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    q = pipe.results["quantize"]
    assert q.graph is not None and q.graph.kind_counts().get("quantize", 0) > 0
    assert "nothing to do" in " ".join(pipe.results["source_transform"].notes)
