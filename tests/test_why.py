"""Pattern debugging: each reason kind on a small constructed graph, then the real flows."""
import json
import logging
import subprocess
import sys

import pytest
import torch
from torch import fx

from quantviz import PipelineConfig
from quantviz.why.fusion_match import explain_unfused
from quantviz.why.ledger import build_ledger, default_patterns, what_if
from quantviz.backends.partition_log import capture_why_no_partition
from quantviz.why.what_ifs import WHAT_IFS


def edge_ops():
    from executorch.exir.dialects._ops import ops as exir_ops

    return exir_ops.edge.quantized_decomposed, exir_ops.edge.aten


def quantized_add(dtype=torch.uint8, tail=(), shared_dq=False, op="add"):
    """dq(x), dq(y) -> add (-> tail ops) -> q, in Edge ops; returns (graph, anchor node)."""
    qd, aten = edge_ops()
    lo, hi = (0, 255) if dtype == torch.uint8 else (-128, 127)
    g = fx.Graph()
    x, y = g.placeholder("x"), g.placeholder("y")
    dqx = g.call_function(qd.dequantize_per_tensor.default, (x, 0.1, 0, lo, hi, dtype))
    dqy = g.call_function(qd.dequantize_per_tensor.default, (y, 0.1, 0, lo, hi, dtype))
    anchor = g.call_function(aten.add.Tensor, (dqx, dqy)) if op == "add" else \
        g.call_function(getattr(aten, op).default, (dqx,))
    cur = anchor
    for t in tail:
        cur = g.call_function(getattr(aten, t).default, (cur,))
    outs = [g.call_function(qd.quantize_per_tensor.default, (cur, 0.2, 0, lo, hi, dtype))]
    if shared_dq:
        outs.append(g.call_function(aten.neg.default, (dqx,)))
    g.output(tuple(outs))
    return g, anchor


def test_dtype_mismatch_names_what_the_pattern_wants_and_what_the_graph_has():
    _, add = quantized_add(torch.int8)
    v = explain_unfused(add, default_patterns())
    assert v.kind == "dtype"
    assert "every node matched except the dtype argument" in v.reason
    assert "pattern wants torch.uint8, graph has torch.int8" in v.reason


def test_a_shared_dequantize_asks_for_duplicate_dequant():
    _, add = quantized_add(torch.uint8, shared_dq=True)
    v = explain_unfused(add, default_patterns())
    assert v.kind == "users"
    assert "has 2 users; fusion needs 1 user" in v.reason and "DuplicateDequantNodePass" in v.reason


def test_no_quantize_after_relu_says_the_quantizer_grouped_the_ops():
    _, add = quantized_add(torch.uint8, tail=("relu", "hardtanh"))
    v = explain_unfused(add, default_patterns())
    assert v.kind == "target"
    assert "no quantize after relu" in v.reason and "hardtanh" in v.reason


def test_an_op_without_any_fusion_pattern_is_named():
    _, gelu = quantized_add(torch.uint8, op="gelu")
    v = explain_unfused(gelu, default_patterns())
    assert v.kind == "no_pattern" and v.reason == "no fusion pattern exists for aten.gelu"


def test_a_complete_match_is_not_blamed():
    _, add = quantized_add(torch.uint8, tail=("relu",))
    v = explain_unfused(add, default_patterns())
    assert v.kind == "matched" and v.attempt.complete


def test_partitioner_reasons_are_captured_from_its_own_logger_only_during_the_call():
    from executorch.exir.backend.utils import WhyNoPartition

    logger = logging.getLogger("quantviz.test.partitioner")
    why = WhyNoPartition(logger=logger)
    _, add = quantized_add()
    reasons: dict[str, list[str]] = {}
    with capture_why_no_partition(reasons, logger.name, prefix="P: "):
        why(add, "unsupported dtype")
        assert logger.level == logging.DEBUG
    why(add, "after the call")
    assert reasons == {add.name: ["P: unsupported dtype"]}
    assert logger.level == logging.NOTSET and logger.propagate


@pytest.mark.e2e
def test_conv_add_pt2e_add_is_unfused_for_the_dtype(flow):
    ledger = build_ledger(flow("sample:conv_add", flow="pt2e"))
    add = next(r for r in ledger.rows if r.op == "add")
    assert add.fate == "unfused" and add.reason_kind == "dtype"
    assert "pattern wants torch.uint8, graph has torch.int8" in add.reason
    convs = [r for r in ledger.rows if r.op == "conv2d"]
    assert len(convs) == 2 and all(r.reason == "no fusion pattern exists for aten.convolution" for r in convs)


@pytest.mark.e2e
def test_tiny_transformer_xnnpack_gives_every_non_delegated_pattern_a_reason(flow):
    ledger = build_ledger(flow("sample:tiny_transformer", flow="pt2e", partitioner="xnnpack"))
    outside = [r for r in ledger.rows if r.fate != "delegated"]
    assert outside and any(r.fate == "delegated" for r in ledger.rows)
    for r in outside:
        assert r.reason.strip()
        assert r.partition_reasons or "no fusion pattern exists for" in r.reason, r


@pytest.mark.e2e
def test_fx_conv_add_add_relu_is_fused_and_linked(flow):
    ledger = build_ledger(flow("sample:conv_add"))
    add = next(r for r in ledger.rows if r.op == "add")
    assert add.fate == "fused" and "quantized_decomposed.add_relu.default" in add.where


@pytest.mark.e2e
def test_demo_partitioner_explains_what_it_left(flow):
    ledger = build_ledger(flow("sample:mobilenet_v2", flow="pt2e", partitioner="demo"))
    left = [r for r in ledger.rows if r.fate == "unfused"]
    assert left and all(any("demo partitioner" in p for p in r.partition_reasons) for r in left)


@pytest.mark.e2e
def test_fuse_stage_view_marks_unfused_patterns_with_their_reason(flow):
    from quantviz.render import to_dot
    from quantviz.stage_views import stage_view

    pipe = flow("sample:conv_add", flow="pt2e")
    row = next(r for r in build_ledger(pipe).rows if r.op == "add")
    dot = to_dot(pipe.results["fuse"].graph, stage_view(pipe, "fuse"))
    line = next(l for l in dot.splitlines() if l.strip().startswith(row.node + " ") or
                l.strip().startswith(f'"{row.node}"'))
    assert "not fused: " in line and "torch.int8" in line


@pytest.mark.e2e
def test_what_if_skipping_a_module_reruns_from_prepare_and_reports_the_changed_rows(flow):
    pipe = flow("sample:conv_add", flow="pt2e")
    other, changed = what_if(pipe, skip_modules=("conv1",))
    rows = build_ledger(other).rows
    assert [r.module_path for r in rows if r.op == "conv2d"] == ["conv2"]  # conv1 stays float
    assert other.results["trace"] is pipe.results["trace"]  # torch.export's graph is the same whatever is skipped
    assert other.results["prepare"] is not pipe.results["prepare"]  # the quantizer leaves conv1 unannotated
    assert [(c.label, c.before, c.after) for c in changed] == [("dq → conv2d → q", "unfused", "gone")]
    assert "conv1" in changed[0].after_detail


@pytest.mark.e2e
def test_the_emit_stage_leaves_earlier_programs_untouched(flow):
    pipe = flow("sample:conv_add", flow="pt2e")  # ran to the end, emit included
    targets = {str(n.target) for n in pipe.results["delegate"].artifact.exported_program().graph.nodes}
    assert not any(t.endswith(".out") for t in targets)


@pytest.mark.e2e
def test_why_cli_prints_the_ledger_and_writes_json(tmp_path):
    out = tmp_path / "why.json"
    proc = subprocess.run([sys.executable, "-m", "quantviz.cli", "why", "sample:conv_add", "--flow", "pt2e",
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "pattern wants torch.uint8, graph has torch.int8" in proc.stdout
    data = json.loads(out.read_text())
    assert data["counts"] == {"unfused": 3} and len(data["rows"]) == 3


@pytest.mark.e2e
def test_delegate_view_keeps_the_partitioner_reason_of_a_node_that_is_also_unfused(flow):
    from quantviz.render import to_dot
    from quantviz.stage_views import stage_view

    pipe = flow("sample:mobilenet_v2", flow="pt2e", partitioner="demo")
    row = next(r for r in build_ledger(pipe).rows if r.fate == "unfused" and r.op == "conv2d")
    notes = dict(stage_view(pipe, "delegate").notes)
    assert notes[row.node].startswith("not delegated: demo partitioner")
    assert dict(stage_view(pipe, "fuse").notes)[row.node].startswith("not fused: ")
    assert "not delegated: demo partitioner" in to_dot(pipe.results["delegate"].graph, stage_view(pipe, "delegate"))


@pytest.mark.e2e
def test_ledger_links_chained_quantviz_fusions(flow):
    """conv2d -> add_relu: the add's inputs are fused ops themselves; the ledger still finds its pattern."""
    ledger = build_ledger(flow("sample:conv_add", flow="pt2e", fusion="quantviz"))
    assert [r.fate for r in ledger.rows] == ["fused"] * 3
    assert all("by quantviz's patterns" in r.where for r in ledger.rows)
    assert any("quantviz.add_relu.default" in r.where for r in ledger.rows)


@pytest.mark.e2e
def test_what_if_with_quantviz_patterns_fuses_the_int8_convs(flow):
    from quantviz.why.ledger import what_if

    pipe = flow("sample:conv_add", flow="pt2e")
    other, changes = what_if(pipe, fusion="quantviz")
    moved = {(c.label, c.before, c.after) for c in changes}
    assert ("dq → conv2d → q", "unfused", "fused") in moved
    assert other.config.fusion == "quantviz" and pipe.config.fusion == "executorch"


def test_the_what_ifs_are_config_changes_as_data():
    config = PipelineConfig(skip_modules=("pad",))
    assert WHAT_IFS["skip the module"].changes_for(config, "conv1") == {"skip_modules": ("pad", "conv1")}
    assert WHAT_IFS["skip the module"].changes_for(config, "pad") == {"skip_modules": ("pad",)}
    with pytest.raises(ValueError, match="name the module"):
        WHAT_IFS["skip the module"].changes_for(config)
    for w in WHAT_IFS.values():  # every experiment gives changes the config accepts
        config.with_changes(**w.changes_for(config, "conv1"))
    assert [w.label for w in WHAT_IFS.values() if w.needs_module] == ["skip the module"]
