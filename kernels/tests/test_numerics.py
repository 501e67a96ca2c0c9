"""Every kernel against the reference (dequantize -> float op -> quantize): at most 1 LSB anywhere, >= 100,000
random elements per op and dtype; the share off by one LSB is reported (``-rP`` or the JSON in kernels/build)."""
from __future__ import annotations

import json

import pytest
import torch

from quantviz_kernels import OPS
from quantviz_kernels.reference import reference
from quantviz_kernels.tests.cases import DTYPES, all_cases, cases_for

CASES = all_cases()
# Kernels that repeat the reference's float32 operations exactly; the rest accumulate in int32 and may land on the
# other side of a rounding boundary.
EXACT = {"add", "add_relu", "mul", "hardtanh", "max_pool2d"}


def lsb_diff(case) -> torch.Tensor:
    got = getattr(torch.ops.quantviz, case.op)(*case.args)
    ref = reference(case.op, *case.args)
    assert got.dtype == ref.dtype == case.dtype and got.shape == ref.shape
    return (got.int() - ref.int()).abs()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_within_one_lsb_of_the_reference(case, record_property):
    diff = lsb_diff(case)
    share = float((diff >= 1).double().mean())
    record_property("share_off_by_one", share)
    assert int(diff.max()) <= 1, f"{case.id}: {int(diff.max())} LSB off the reference"
    if case.op in EXACT:
        assert int(diff.max()) == 0, f"{case.id}: an exact kernel differs from the reference"


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["int8", "uint8"])
def test_random_case_has_at_least_100k_elements_and_reports_share(op, dtype, tmp_path_factory):
    case = next(c for c in cases_for(op, dtype) if c.label == "random")
    diff = lsb_diff(case)
    assert diff.numel() >= 100_000
    report = tmp_path_factory.getbasetemp() / "kernel_lsb.json"
    rows = json.loads(report.read_text()) if report.exists() else {}
    rows[case.id] = {"elements": diff.numel(), "share_off_by_one": float((diff >= 1).double().mean()),
                     "max_lsb": int(diff.max())}
    report.write_text(json.dumps(rows, indent=1))
    assert int(diff.max()) <= 1


def test_saturation_hits_both_ends():
    case = next(c for c in cases_for("add", torch.int8) if c.label == "saturate")
    got = torch.ops.quantviz.add(*case.args)
    assert int(got.min()) == -128 and int(got.max()) == 127
    assert lsb_diff(case).max() == 0


def test_huge_scale_rounds_everything_to_the_zero_point():
    case = next(c for c in cases_for("add", torch.uint8) if c.label == "huge-scale")
    assert lsb_diff(case).max() == 0


def test_relu_folded_into_the_output_range_is_exact():
    """conv -> relu -> quantize is lowered to conv2d with out_quant_min = zero point: check that identity."""
    case = next(c for c in cases_for("conv2d", torch.int8) if c.label == "per-channel-pad")
    *head, o_s, o_zp, o_min, o_max = case.args
    got = torch.ops.quantviz.conv2d(*head, o_s, o_zp, max(o_min, o_zp), o_max)
    from quantviz_kernels.reference import FLOAT_OPS, quantize

    ref = quantize(torch.relu(FLOAT_OPS["conv2d"](*head)), o_s, o_zp, o_min, o_max, torch.int8)
    assert (got.int() - ref.int()).abs().max() <= 1
    assert int(got.min()) >= o_zp


def test_bad_input_is_refused_with_the_operator_name():
    a = torch.zeros(4, dtype=torch.int32)
    with pytest.raises(RuntimeError, match="quantviz::add: expects an int8 or uint8"):
        torch.ops.quantviz.add(a, 0.1, 0, -128, 127, a, 0.1, 0, -128, 127, 0.1, 0, -128, 127)
    b = torch.zeros(3, dtype=torch.int8)
    with pytest.raises(RuntimeError, match="no broadcasting"):
        torch.ops.quantviz.add(b, 0.1, 0, -128, 127, b[:2], 0.1, 0, -128, 127, 0.1, 0, -128, 127)
