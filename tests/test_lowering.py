"""Lowering: quantviz's transform_and_lower (edge stage + delegate stage) is the bare to_edge_transform_and_lower."""
import pytest

from quantviz import Pipeline, PipelineConfig, load_model
from quantviz.bare_flow import run_bare
from quantviz.flows import FLOWS
from quantviz.lowering import calls, graph_ops, partitioner_for


def test_transform_and_lower_is_the_default_and_names_the_bare_call():
    config = PipelineConfig(flow="pt2e", partitioner="xnnpack")
    assert config.lowering == "transform_and_lower"
    edge, delegate = "\n".join(calls(config, "edge")), "\n".join(calls(config, "delegate"))
    assert "to_edge_transform_and_lower(aten_program, partitioner=[XnnpackPartitioner()]" in edge
    assert "_gen_edge_manager_for_partitioners" in edge and "to_backend({'forward': XnnpackPartitioner()})" in delegate
    old = config.with_changes(lowering="to_backend")
    assert calls(old, "edge")[-1].startswith("edge = to_edge(") and calls(old, "delegate")[-1] == \
        "edge = edge.to_backend(XnnpackPartitioner())"


def test_the_partitioner_shapes_the_edge_program_only_under_transform_and_lower():
    edge = FLOWS["pt2e"].stage("edge")
    assert "partitioner" in edge.reads_under(PipelineConfig())
    assert "partitioner" not in edge.reads_under(PipelineConfig(lowering="to_backend"))
    # and the portable backend delegates nothing, so switching its partitioner off re-runs nothing
    base = PipelineConfig(flow="pt2e")
    assert edge.signature(base) == edge.signature(base.with_changes(partitioner="none"))
    assert edge.signature(base) != edge.signature(base.with_changes(backend="xnnpack"))


@pytest.mark.e2e
@pytest.mark.parametrize("sample", ["tiny_transformer"])  # and every zoo model: tests/test_zoo_e2e.py
def test_same_delegates_and_leftover_ops_as_the_bare_call(sample):
    config = PipelineConfig(flow="pt2e", partitioner="xnnpack")
    bare = run_bare(load_model(f"sample:{sample}"), config)
    pipe = Pipeline(load_model(f"sample:{sample}"), config).run()
    assert bare.ok and pipe.ok, (bare.error, pipe.failed and pipe.failed.error)
    delegates, leftover = graph_ops(pipe.results["delegate"].artifact)
    assert delegates == bare.delegate_calls >= 1
    assert leftover == bare.non_delegated_ops
    assert any("to_edge_transform_and_lower" in c for c in pipe.results["delegate"].calls)
    # the edge page shows the program before partitioning: no delegate yet, the linear/conv ops kept whole
    edge_delegates, edge_ops = graph_ops(pipe.results["edge"].artifact)
    assert edge_delegates == 0 and len(edge_ops) > len(leftover)


def test_op_granularity_makes_xnnpack_per_op_and_the_bare_calls_say_so():
    choice = partitioner_for(PipelineConfig(flow="pt2e", backend="xnnpack", delegate_granularity="op"))
    assert choice.partitioner.per_op_mode and choice.constructor == "XnnpackPartitioner(per_op_mode=True)"
    assert not partitioner_for(PipelineConfig(flow="pt2e", backend="xnnpack")).partitioner.per_op_mode
    config = PipelineConfig(flow="pt2e", partitioner="xnnpack", delegate_granularity="op")
    assert "partitioner=[XnnpackPartitioner(per_op_mode=True)]" in "\n".join(calls(config, "delegate"))
    assert calls(config.with_changes(lowering="to_backend"), "delegate")[-1] == \
        "edge = edge.to_backend(XnnpackPartitioner(per_op_mode=True))"


@pytest.mark.e2e
def test_op_granularity_gives_one_delegate_per_pattern_as_the_bare_call_does():
    config = PipelineConfig(flow="pt2e", partitioner="xnnpack", delegate_granularity="op")
    bare = run_bare(load_model("sample:conv_add"), config)
    pipe = Pipeline(load_model("sample:conv_add"), config.with_changes(until="delegate")).run()
    assert bare.ok and pipe.ok, (bare.error, pipe.failed and pipe.failed.error)
    delegates, leftover = graph_ops(pipe.results["delegate"].artifact)
    whole = Pipeline(load_model("sample:conv_add"), config.with_changes(delegate_granularity="graph",
                                                                        until="delegate")).run()
    assert delegates == bare.delegate_calls > graph_ops(whole.results["delegate"].artifact)[0] == 1
    assert leftover == bare.non_delegated_ops
