"""Changing the config re-runs only the stages it affects."""
from quantviz import Pipeline, PipelineConfig, load_model


def test_changing_the_partitioner_keeps_the_stages_before_delegate_with_to_backend():
    pipe = Pipeline(load_model("sample:conv_add"),
                    PipelineConfig(flow="pt2e", lowering="to_backend", until="delegate")).run()
    before = {k: v.artifact for k, v in pipe.results.items()}
    dropped = pipe.update(pipe.config.with_changes(partitioner="demo"))
    assert dropped == ["delegate"]
    pipe.run()
    assert all(pipe.results[s].artifact is before[s] for s in ("trace", "prepare", "calibrate", "convert", "edge"))
    assert pipe.results["delegate"].graph.kind_counts().get("delegate") == 1


def test_changing_the_partitioner_reruns_edge_with_transform_and_lower():
    """to_edge_transform_and_lower keeps the partitioner's ops whole at edge: the edge program depends on it."""
    pipe = Pipeline(load_model("sample:conv_add"), PipelineConfig(flow="pt2e", until="delegate")).run()
    trace = pipe.results["trace"].artifact
    dropped = pipe.update(pipe.config.with_changes(partitioner="xnnpack"))
    assert dropped == ["capture", "edge", "delegate"]  # edge rewrites capture's program in place
    pipe.run()
    assert pipe.results["trace"].artifact is trace and pipe.ok


def test_changing_calibration_reruns_prepare_because_calibration_mutates_observers():
    pipe = Pipeline(load_model("sample:conv_add"), PipelineConfig(until="convert")).run()
    trace = pipe.results["trace"].artifact
    dropped = pipe.update(pipe.config.with_changes(calibration_batches=2))
    assert dropped == ["prepare", "calibrate", "convert"]
    pipe.run()
    assert pipe.results["trace"].artifact is trace
    assert pipe.results["calibrate"].metrics["batches"] == 2


def test_a_failed_stage_is_retried_after_any_change():
    pipe = Pipeline(load_model("sample:not_traceable")).run()
    assert not pipe.ok
    assert pipe.update(pipe.config.with_changes(skip_modules=("pad",), until="convert")) == ["trace"]
    pipe.run()
    assert pipe.ok and list(pipe.results) == ["trace", "prepare", "calibrate", "convert"]


def test_until_stops_early_and_ok_reflects_it():
    pipe = Pipeline(load_model("sample:conv_add"), PipelineConfig(until="calibrate")).run()
    assert list(pipe.results) == ["trace", "prepare", "calibrate"] and pipe.ok


def test_changing_fusion_rebuilds_the_delegate_program_that_fusion_rewrote(flow):
    """QuantFusionPass rewrites the program it is given in place: a new fusion choice must not start from the
    already-fused program (it did, before the fuse stage copied its input)."""
    from quantviz import Pipeline, PipelineConfig, load_model

    pipe = Pipeline(load_model("sample:conv_add"), PipelineConfig(until="fuse")).run()
    dropped = pipe.update(pipe.config.with_changes(fusion="none"))
    assert dropped == ["fuse"]
    pipe.run()
    fuse = pipe.results["fuse"].graph
    assert not [n for n in fuse.nodes if n.kind == "quantized_op"]
    delegate = pipe.results["delegate"].graph
    assert not [n for n in delegate.nodes if "add_relu" in n.target]
