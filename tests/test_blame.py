"""Where accuracy is lost: the blame table (one row per quantized pattern, error per level, local vs propagated, the
first divergence), per-op delegates, every model output compared, and `compare` reusing the run stage's runtime."""
import math

import pandas as pd
import pytest
import torch

from quantviz import ModelSpec, Pipeline, PipelineConfig
from quantviz.cli import main
from quantviz.numerics import levels as levels_module
from quantviz.numerics.blame import blame_by_stage, blame_table
from quantviz.numerics.compare import compare
from quantviz.numerics.runtime_intermediates import debug_buffer_size, runtime_events
from test_model_outputs import DictNet

CONTRACT = ["node", "module", "op", "order", "float_vs_reference_sqnr_db", "reference_vs_fused_sqnr_db",
            "fused_vs_runtime_sqnr_db", "reference_max_lsb", "fused_max_lsb", "runtime_max_lsb",
            "runtime_local_max_lsb", "runtime_source", "first_divergence"]
PER_OP = dict(flow="pt2e", partitioner="xnnpack", delegate_granularity="op")


def _events(pipe, batch):
    emit = pipe.results["emit"].artifact
    return runtime_events(emit.buffer, batch, debug_buffer_size(emit))


def _shift(t: torch.Tensor, lsb: int = 3, count: int = 6) -> torch.Tensor:
    """``t`` with ``count`` elements moved ``lsb`` steps (away from the int8 edge): a planted wrong output."""
    out = t.clone()
    flat = out.view(-1)
    idx = (flat.int() < 100).nonzero().flatten()[:count]
    flat[idx] = (flat[idx].int() + lsb).to(out.dtype)
    return out


@pytest.mark.e2e
def test_clean_per_op_run_gives_every_delegated_op_its_runtime_value_and_no_divergence(flow):
    pipe = flow("sample:digits_cnn", **PER_OP)
    rows = blame_table(pipe, pipe.spec.comparison_batches()[:1])
    patterns = pipe.results["convert"].graph.patterns
    assert [r.pattern for r in rows] == [p.id for p in patterns] and [r.order for r in rows] == list(range(len(rows)))
    assert all(r.runtime_source == "delegate-op" and r.delegate for r in rows), [r.note for r in rows]
    assert not any(r.first_divergence for r in rows)
    for r in rows:
        assert r.runtime_local_max_lsb <= 1.0 and r.runtime_vs_reference_max_lsb <= 3.0
        assert r.fused_max_lsb == 0.0 and r.reference_vs_fused_sqnr_db == math.inf  # delegates ahead of time: edge ops
        assert 15 < r.float_vs_reference_sqnr_db < 80 and r.reference_max_lsb >= 0.5  # rounding: at least ½ LSB
        assert r.fused_vs_runtime_sqnr_db > 25 and r.runtime_max_lsb == r.runtime_vs_reference_max_lsb
        assert r.scale > 0 and r.output_q


@pytest.mark.e2e
def test_a_planted_wrong_delegate_op_is_named_as_the_first_divergence(flow):
    pipe = flow("sample:digits_cnn", **PER_OP)
    batch = pipe.spec.comparison_batches()[0]
    clean = blame_table(pipe, [batch])
    target = next(r for r in clean if r.op.startswith("conv2d") and r.order > 0)  # the second conv
    events = _events(pipe, batch)
    calls = [e for e in events if e.delegate_call]
    fuse_calls = [n.id for n in pipe.results["fuse"].graph.nodes if n.kind == "delegate"]
    event = calls[fuse_calls.index(target.delegate)]
    event.data[-1] = _shift(event.data[-1])  # the delegate's output, as a wrong XNNPACK kernel would make it
    rows = blame_table(pipe, [batch], [events])
    firsts = [r for r in rows if r.first_divergence]
    assert [r.node for r in firsts] == [target.node]
    planted = firsts[0]
    assert planted.runtime_local_max_lsb in (3.0, 4.0)  # 3 planted, +1 where the kernel already rounded the other way
    assert planted.runtime_vs_reference_max_lsb >= 3.0
    assert planted.fused_vs_runtime_sqnr_db < target.fused_vs_runtime_sqnr_db
    for r in rows:  # upstream rows are untouched (the planted value only changes the log, not what consumers read)
        if r.order < planted.order:
            assert r.to_dict() == next(c for c in clean if c.order == r.order).to_dict()


@pytest.mark.e2e
def test_a_planted_wrong_portable_kernel_output_is_named_as_the_first_divergence(flow):
    pipe = flow("sample:digits_cnn", flow="pt2e", fusion="quantviz")  # no delegates: quantviz kernels in the runtime
    batch = pipe.spec.comparison_batches()[0]
    clean = blame_table(pipe, [batch])
    assert all(r.runtime_source == "intermediate" for r in clean if r.op != "flatten")
    assert not any(r.first_divergence for r in clean)
    assert all(r.runtime_max_lsb == 0.0 for r in clean if r.runtime_source)  # same kernels ahead of time and on device
    events = _events(pipe, batch)
    convs = [i for i, e in enumerate(events) if "conv2d" in e.name and not e.delegated]
    events[convs[1]].data[0] = _shift(events[convs[1]].data[0], lsb=5)
    rows = blame_table(pipe, [batch], [events])
    firsts = [r for r in rows if r.first_divergence]
    second_conv = [r for r in rows if r.op.startswith("conv2d")][1]
    assert [r.node for r in firsts] == [second_conv.node]
    assert firsts[0].runtime_local_max_lsb in (5.0, 6.0) and firsts[0].runtime_max_lsb in (5.0, 6.0)


@pytest.mark.e2e
def test_a_wrong_op_substituted_in_the_fused_program_is_the_first_divergence():
    from quantviz import load_model

    config = PipelineConfig(flow="pt2e", fusion="quantviz", until="fuse")
    pipe = Pipeline(load_model("sample:digits_cnn"), config).run()
    gm = pipe.results["fuse"].artifact.exported_program().graph_module
    convs = [n for n in gm.graph.nodes if "quantviz.conv2d" in str(n.target)]
    wrong = convs[1]  # the second conv computes with its output zero point 3 too high: +3 LSB at every element
    args = list(wrong.args)
    args[-3] = args[-3] + 3
    wrong.args = tuple(args)
    gm.recompile()
    pipe.update(config.with_changes(until="emit"))
    pipe.run()
    assert pipe.results["emit"].ok
    rows = blame_table(pipe, pipe.spec.comparison_batches()[:1])
    firsts = [r for r in rows if r.first_divergence]
    second_conv = [r for r in rows if r.op.startswith("conv2d")][1]
    assert [r.node for r in firsts] == [second_conv.node]
    assert 3.0 <= second_conv.runtime_local_max_lsb <= 4.0  # what the runtime computes: 3 LSB off its reference op
    assert 3.0 <= second_conv.fused_local_max_lsb <= 4.0   # and ahead of time: the op itself is wrong
    assert second_conv.runtime_max_lsb == 0.0               # the runtime runs that same wrong op
    for r in rows:
        if r.order < second_conv.order:
            assert r.runtime_local_max_lsb <= 1.0 and r.fused_max_lsb <= 1.0
        elif r.order > second_conv.order and r.runtime_source:  # fed the wrong values, right on them
            assert r.runtime_local_max_lsb <= 1.0, r


@pytest.mark.e2e
def test_fx_flow_values_are_found_without_provenance_and_portable_kernels_match(flow):
    pipe = flow("sample:digits_cnn")  # fx: the reference model is symbolically traced, its names do not survive export
    rows = blame_table(pipe, pipe.spec.comparison_batches()[:1])
    with_runtime = [r for r in rows if r.runtime_source == "intermediate"]
    assert len(with_runtime) >= len(rows) - 2  # the flatten/view patterns have no quantize of their own downstream
    for r in with_runtime:  # portable kernels compute what the fused program computes ahead of time
        assert r.runtime_max_lsb == 0.0 and r.runtime_local_max_lsb <= 1.0 and r.reference_vs_fused_sqnr_db > 30
    by_stage = blame_by_stage(pipe, rows)
    fuse_quantizes = [n.id for n in pipe.results["fuse"].graph.nodes if n.kind == "quantize"]
    assert fuse_quantizes and all(q in by_stage["fuse"] for q in fuse_quantizes[1:])  # [0]: the input's quantize


@pytest.mark.e2e
def test_blame_by_stage_maps_every_stage_graph_to_its_pattern_row(flow):
    pipe = flow("sample:digits_cnn", **PER_OP)
    rows = blame_table(pipe, pipe.spec.comparison_batches()[:1])
    by_stage = blame_by_stage(pipe, rows)
    assert set(by_stage) == {"convert", "capture", "edge", "delegate", "fuse", "emit"}
    convert = pipe.results["convert"].graph
    for p in convert.patterns:
        assert all(by_stage["convert"][m].pattern == p.id for m in p.members)
    for stage in ("delegate", "fuse", "emit"):
        graph = pipe.results[stage].graph
        calls = [n.id for n in graph.nodes if n.kind == "delegate"]
        rows_of_calls = {by_stage[stage][c].pattern for c in calls if c in by_stage[stage]}
        assert rows_of_calls == {r.pattern for r in rows}, stage  # one delegate per pattern, each coloured
    fuse = by_stage["fuse"]
    for r in rows:  # the delegate call the row names is coloured with that row
        assert fuse[r.delegate].pattern == r.pattern
    inside = [k for k in fuse if k not in {n.id for n in pipe.results["fuse"].graph.nodes}]
    assert inside  # nodes inside the delegate subgraphs are mapped too


@pytest.mark.e2e
def test_compare_writes_blame_csv_and_the_per_op_program_equals_the_graph_one(flow, tmp_path):
    code = main(["compare", "sample:digits_cnn", "--flow", "pt2e", "--partitioner", "xnnpack",
                 "--delegate-granularity", "op", "--out", str(tmp_path)])
    assert code == 0
    frame = pd.read_csv(tmp_path / "blame.csv")
    assert CONTRACT == [c for c in frame.columns if c in CONTRACT]
    delegated = frame[frame["delegate"].notna()]
    assert len(delegated) == len(frame) > 0
    assert (delegated["runtime_source"] == "delegate-op").mean() >= 0.95
    assert not frame["first_divergence"].any()
    import json

    data = json.loads((tmp_path / "numerics.json").read_text())
    check = data["granularity_check"]
    assert check["delegate_calls"]["op"] > check["delegate_calls"]["graph"] >= 1
    assert check["sqnr_db"] == "inf" or check["sqnr_db"] > 40  # same numbers up to XNNPACK's own rounding
    assert data["blame_summary"]["delegated_with_runtime"] == data["blame_summary"]["delegated"] == len(frame)


class DictOut(DictNet):
    """test_model_outputs' DictNet with an integer output and a nested tuple besides the logits."""

    def forward(self, x):
        h = torch.relu(self.conv(x)).mean((2, 3))
        logits = self.fc(h)
        return {"logits": logits, "best": logits.argmax(-1), "aux": (h,)}


@pytest.mark.e2e
def test_every_output_of_a_dict_model_is_listed_and_the_floating_ones_compared():
    torch.manual_seed(0)
    batches = [(torch.randn(1, 3, 16, 16),) for _ in range(4)]
    spec = ModelSpec("dict_out", DictOut().eval(), batches[0], calibration_batches=batches)
    pipe = Pipeline(spec, PipelineConfig(flow="pt2e")).run()
    assert pipe.ok, pipe.failed and pipe.failed.error
    report = compare(pipe, max_batches=4)
    rows = {r.path: r for r in report.outputs}
    assert list(rows) == ["logits", "best", "aux[0]"]
    assert rows["logits"].compared and rows["aux[0]"].compared and rows["logits"].end_to_end
    assert not rows["best"].compared and rows["best"].dtype == "int64" and "integer" in rows["best"].why_not
    assert rows["best"].equal_share["float", "runtime"] >= 0.75
    for path in ("logits", "aux[0]"):
        assert 15 < rows[path].sqnr_db["float", "runtime"] < 80 and rows[path].sqnr_db["reference", "runtime"] > 15
    # the end-to-end table is the first floating output's (logits), as before
    assert report.metric("calibration", "float", "runtime") == pytest.approx(rows["logits"].sqnr_db["float", "runtime"])
    written = {r["path"]: r for r in report.to_dict()["outputs"]}  # numerics.json: one column per level pair
    assert written["best"]["float_vs_runtime_equal_share"] == rows["best"].equal_share["float", "runtime"]
    assert "outputs not compared: best (see outputs.csv)" in report.summary_lines()


@pytest.mark.e2e
def test_compare_reuses_the_run_stage_runtime_outputs(flow, monkeypatch):
    pipe = flow("sample:conv_add", flow="pt2e")
    loads = []
    real = levels_module.execute
    monkeypatch.setattr(levels_module, "execute", lambda *a, **k: loads.append(1) or real(*a, **k))
    report = compare(pipe, check_granularity=False)
    # conv_add: calibration (8 batches, not the run stage's) and evaluation (the run stage's 4): one new runtime load
    assert report.runtime_reused and len(loads) == 1
    without_run = Pipeline(pipe.spec, pipe.config)
    without_run.results = {k: v for k, v in pipe.results.items() if k != "run"}
    fresh = compare(without_run, check_granularity=False)
    assert not fresh.runtime_reused and len(loads) == 3
    assert report.metric("evaluation", "float", "runtime") == fresh.metric("evaluation", "float", "runtime")
    assert report.end_to_end == fresh.end_to_end


@pytest.mark.e2e
@pytest.mark.slow
def test_mobilenet_v2_per_op_blame_has_the_runtime_value_of_the_delegated_conv_linear_add(tmp_path):
    assert main(["compare", "sample:mobilenet_v2", "--flow", "pt2e", "--partitioner", "xnnpack",
                 "--delegate-granularity", "op", "--out", str(tmp_path)]) == 0
    frame = pd.read_csv(tmp_path / "blame.csv")
    main_ops = frame[frame["op"].str.match(r"^(conv2d|linear|add)") & frame["delegate"].notna()]
    assert len(main_ops) >= 20
    assert (main_ops["runtime_source"] == "delegate-op").mean() >= 0.95
    assert (main_ops["runtime_local_max_lsb"] <= 1).all() and not frame["first_divergence"].any()
