"""Node-by-node and end-to-end numerics on the real flow: coverage of every quantized op, the four levels, the
per-kernel-instance comparison (with a planted wrong kernel), sensitivity and `quantviz compare`'s exit codes."""
import json

import pytest
import torch

from quantviz.cli import main
from quantviz.numerics.compare import LEVEL_OK, compare
from quantviz.numerics.runtime_intermediates import OpStatus

pytestmark = pytest.mark.e2e


def activation_quantizes(pipe) -> set[str]:
    from quantviz.numerics.per_node import _is_activation_quantize

    return {n.name for n in pipe.results["convert"].artifact.graph.nodes if _is_activation_quantize(n)}


@pytest.mark.parametrize("sample,flow_name", [("digits_cnn", "fx"), ("digits_cnn", "pt2e"),
                                              ("mobilenet_v2", "fx"), ("mobilenet_v2", "pt2e")])
def test_per_node_table_covers_every_quantized_op(flow, sample, flow_name):
    pipe = flow(f"sample:{sample}", flow=flow_name, until="convert")
    from quantviz.numerics.per_node import per_node_table

    batches = pipe.spec.comparison_batches()[:2]
    rows = per_node_table(pipe, batches)
    assert {r.quantize_node for r in rows} == activation_quantizes(pipe)
    assert all(r.matched and r.sqnr_db == r.sqnr_db for r in rows), [r for r in rows if not r.matched]
    assert [r.sqnr_db for r in rows] == sorted(r.sqnr_db for r in rows)  # worst first
    assert all(r.sqnr_db > 15 for r in rows)  # int8 is close to float at every layer of these models


def test_batch_norm_folded_into_conv_is_followed(flow):
    from quantviz.numerics.per_node import per_node_table

    pipe = flow("sample:mobilenet_v2", flow="pt2e", until="convert")
    rows = per_node_table(pipe, pipe.spec.comparison_batches()[:1])
    folded = [r for r in rows if r.how.startswith("folded")]
    assert folded and all("batch_norm" in r.matched for r in folded)


def test_four_levels_on_digits_fx(flow):
    pipe = flow("sample:digits_cnn", fusion="quantviz")
    report = compare(pipe)
    assert report.levels == {"float": LEVEL_OK, "reference": LEVEL_OK, "fused": LEVEL_OK, "runtime": LEVEL_OK}
    pairs = {(r.data, r.a, r.b) for r in report.end_to_end}
    assert ("evaluation", "float", "runtime") in pairs and ("calibration", "reference", "fused") in pairs
    assert report.metric("evaluation", "fused", "runtime") == float("inf")  # same kernels ahead of time and on device
    assert report.metric("evaluation", "reference", "runtime", "max_lsb") <= 1.0
    acc = report.accuracy["evaluation"]
    assert acc["float"] > 0.95 and abs(acc["runtime"] - acc["float"]) < 0.02


def test_every_fused_op_of_digits_is_compared_with_its_reference(flow):
    pipe = flow("sample:digits_cnn", flow="pt2e", fusion="quantviz")
    report = compare(pipe)
    fused = {f.node for f in pipe.results["fuse"].diagnostics.fusions if f.op.startswith("quantviz")}
    assert {k.node for k in report.kernels} == fused
    assert max(k.max_lsb for k in report.kernels) <= 1
    assert all(sum(k.histogram.values()) == k.elements > 0 for k in report.kernels)


def test_a_planted_wrong_kernel_is_flagged_with_its_lsb_error(flow):
    pipe = flow("sample:digits_cnn", flow="pt2e", fusion="quantviz")

    def off_by_three(*args):  # test-only: the real conv, with element 0 of every output moved 3 LSB
        out = torch.ops.quantviz.conv2d(*args).clone()
        flat = out.view(-1)
        flat[0] = (flat[0].int() - 3).clamp(-128, 127).to(out.dtype) if flat[0] > -125 else flat[0] + 3
        return out

    report = compare(pipe, kernels={"conv2d": off_by_three})
    worst = report.kernels[0]
    assert worst.op == "conv2d" and worst.max_lsb in (3, 4)  # 3 planted, +1 if it sat on a rounding edge
    assert all(k.max_lsb <= 1 for k in report.kernels if k.op != "conv2d")
    assert f"quantviz kernels: worst instance {worst.node} {worst.max_lsb} LSB off the reference" in \
        report.summary_lines()


def test_sensitivity_ranks_layers_with_progress(flow):
    pipe = flow("sample:digits_cnn")
    seen = []
    report = compare(pipe, sensitivity_layers=3, progress=lambda f, t: seen.append(t))
    assert {r.layer for r in report.sensitivity} == {"conv1", "conv2", "fc"}
    gains = [r.gain_db for r in report.sensitivity]
    assert gains == sorted(gains, reverse=True) and gains[0] > 0  # keeping some layer float helps
    assert any("fc kept float" in t for t in seen)


def test_compare_cli_writes_numerics_for_digits_fx(tmp_path):
    assert main(["compare", "sample:digits_cnn", "--flow", "fx", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "numerics.json").read_text())
    assert set(data["levels"]) == {"float", "reference", "fused", "runtime"}
    assert data["levels"]["runtime"] == "ok" and data["levels"]["float"] == "ok"
    assert data["accuracy"]["evaluation"]["float"] > 0.95 and "runtime" in data["accuracy"]["evaluation"]
    assert len(data["per_node"]) == 9 and all(r["matched"] for r in data["per_node"])
    ri = data["runtime_intermediates"]
    assert ri["available"] is True and ri["rows"]
    compared = [r for r in ri["rows"] if r["status"] == "compared"]
    assert compared and all(r["node"] for r in compared)
    for name in ("end_to_end", "per_node", "accuracy", "kernels", "runtime_intermediates", "sensitivity"):
        assert (tmp_path / f"{name}.csv").exists()
    assert "sqnr_db" in (tmp_path / "per_node.csv").read_text().splitlines()[0]


@pytest.mark.parametrize("bound,code", [(60, 3), pytest.param(10, 0, marks=pytest.mark.slow)])
def test_fail_below_sqnr_exit_code(tmp_path, bound, code):
    argv = ["compare", "sample:mobilenet_v2", "--flow", "pt2e", "--partitioner", "xnnpack",
            "--fail-below-sqnr", str(bound), "--no-taps", "--repeat", "0", "--out", str(tmp_path)]  # the gate only
    assert main(argv) == code


def test_runtime_intermediates_equal_the_fused_program_op_by_op(flow):
    """digits_cnn with quantviz kernels: every kernel call in the runtime gives the bytes the same op gives ahead of
    time (same kernels, same inputs), matched to the right node."""
    from quantviz.numerics.runtime_intermediates import runtime_intermediates

    pipe = flow("sample:digits_cnn", flow="pt2e", fusion="quantviz")
    rows = runtime_intermediates(pipe, pipe.spec.comparison_batches()[0])
    ops = [r.op for r in rows]
    assert ops.count("quantviz::conv2d.out") == 2 and ops.count("quantviz::max_pool2d.out") == 2
    assert all(r.status is OpStatus.COMPARED and r.max_abs_diff == 0.0 and r.elements > 0 for r in rows)
    convs = [r.node for r in rows if r.op == "quantviz::conv2d.out"]
    assert convs == ["conv2d_default", "conv2d_default_1"]


def test_runtime_intermediates_name_what_a_delegate_hides(flow):
    from quantviz.numerics.runtime_intermediates import runtime_intermediates

    pipe = flow("sample:conv_add", flow="pt2e", partitioner="xnnpack")
    rows = runtime_intermediates(pipe, pipe.spec.comparison_batches()[0])
    hidden = [r for r in rows if r.status is OpStatus.INSIDE_DELEGATE]
    assert hidden and all(r.elements == 0 for r in hidden)
    assert all(r.to_dict()["status"].startswith("inside a delegate") for r in hidden)  # the table's wording
