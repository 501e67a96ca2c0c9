"""Values inside delegates through ExecuTorch's intermediate-output taps: the blame table gets the runtime's value of
every pattern inside a delegate of many, agrees with XNNPACK's per-op mode, names a planted wrong value, runs on the
TOSA reference model, and says why where a backend gives no numbers."""
import pytest

from quantviz.numerics.blame import blame_table
from quantviz.numerics.compare import compare
from quantviz.numerics.taps import tap_runtime
from test_blame import _events, _shift

WHOLE = dict(flow="pt2e", partitioner="xnnpack")


@pytest.mark.e2e
def test_taps_give_every_pattern_inside_one_xnnpack_delegate_its_runtime_value(flow):
    pipe = flow("sample:digits_cnn", **WHOLE)
    assert pipe.results["delegate"].metrics["delegate_calls"] == 1
    plain = compare(pipe, taps=False, check_granularity=False)
    report = compare(pipe, check_granularity=False)
    taps = report.taps
    assert taps.available and not taps.partition_changed, taps.summary()
    assert taps.delegate_calls == taps.delegate_calls_untapped == 1
    assert taps.taps == len({r.output_q for r in report.blame}) + 1  # every pattern's output and the input's quantize
    # without taps only the delegate's output is exposed; with them every pattern is
    assert sum(bool(r.runtime_source) for r in plain.blame) == 1
    assert all(r.runtime_source in ("tap", "delegate-output") for r in report.blame), [r.note for r in report.blame]
    assert sum(r.runtime_source == "tap" for r in report.blame) == len(report.blame) - 1
    for r in report.blame:  # a correct delegate: each op within 1 LSB of its reference op given the same inputs
        assert r.runtime_local_max_lsb <= 1.0 and r.runtime_vs_reference_max_lsb <= 3.0, r
        assert r.reference_vs_runtime_sqnr_db > 25  # (the fused program, run ahead of time, hides them too)
    assert not any(r.first_divergence for r in report.blame)
    assert any("inside delegates: " in line and "partitioning unchanged" in line for line in report.summary_lines())
    assert report.to_dict()["taps"]["partition_changed"] is False


@pytest.mark.e2e
def test_tapped_values_agree_with_xnnpacks_per_op_mode_on_every_pattern(flow):
    tapped = {r.pattern: r for r in compare(flow("sample:digits_cnn", **WHOLE), check_granularity=False).blame}
    per_op = {r.pattern: r for r in compare(flow("sample:digits_cnn", **WHOLE, delegate_granularity="op"),
                                            check_granularity=False).blame}
    assert tapped.keys() == per_op.keys()
    for p, r in tapped.items():
        assert per_op[p].runtime_source == "delegate-op"
        assert r.runtime_vs_reference_max_lsb == per_op[p].runtime_vs_reference_max_lsb, (p, r, per_op[p])


@pytest.mark.e2e
def test_a_planted_wrong_value_inside_a_delegate_is_the_first_divergence(flow):
    pipe = flow("sample:digits_cnn", **WHOLE)
    batch = pipe.spec.comparison_batches()[0]
    run = tap_runtime(pipe, [batch])
    clean = blame_table(pipe, [batch], [_events(pipe, batch)], tapped=run.values)
    target = next(r for r in clean if r.op.startswith("conv2d") and r.order > 0)  # the second conv, mid-delegate
    assert target.runtime_source == "tap"
    planted = dict(run.values[0])
    planted[target.output_q] = _shift(planted[target.output_q], lsb=5)
    rows = blame_table(pipe, [batch], [_events(pipe, batch)], tapped=[planted])
    first = next(r for r in rows if r.first_divergence)
    assert first.node == target.node and first.runtime_local_max_lsb >= 5
    assert all(r.runtime_local_max_lsb <= 1.0 for r in rows if r.order < target.order)


@pytest.mark.e2e
def test_taps_run_on_the_tosa_reference_model(flow):
    pipe = flow("sample:conv_add", flow="pt2e", backend="arm-tosa")
    assert pipe.ok, pipe.failed and pipe.failed.error
    report = compare(pipe, check_granularity=False)
    taps = report.taps
    assert taps.available and taps.reason == "TOSA reference model", taps.summary()
    assert all(r.runtime_source for r in report.blame), [r.note for r in report.blame]
    assert any(r.runtime_source == "tap" for r in report.blame)
    assert all(r.runtime_local_max_lsb <= 1.0 for r in report.blame), [(r.node, r.runtime_local_max_lsb)
                                                                       for r in report.blame]


@pytest.mark.e2e
def test_taps_say_why_not_where_nothing_is_delegated_or_each_delegate_holds_one_op(flow):
    none = tap_runtime(flow("sample:digits_cnn", flow="pt2e", partitioner="none"), [])
    assert not none.available and "nothing is delegated" in none.reason
    assert none.summary().startswith("no tapped values: ")
    per_op = flow("sample:digits_cnn", **WHOLE, delegate_granularity="op")
    one = tap_runtime(per_op, [])
    assert not one.available and "one pattern" in one.reason
    assert compare(per_op, check_granularity=False).taps is None  # per-op programs are not tapped: nothing hidden
