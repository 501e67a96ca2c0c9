"""torch.library.opcheck on every operator and dtype: schema, fake (Meta) kernel, autograd registration and
dynamic-shape tracing agree with the CPU kernel."""
from __future__ import annotations

import pytest
import torch

from quantviz_kernels import OPS
from quantviz_kernels.tests.cases import DTYPES, cases_for


def small_case(op, dtype):
    return min(cases_for(op, dtype), key=lambda c: c.args[0].numel())


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["int8", "uint8"])
def test_opcheck(op, dtype):
    case = small_case(op, dtype)
    torch.library.opcheck(getattr(torch.ops.quantviz, op).default, case.args)


@pytest.mark.parametrize("op", OPS)
def test_out_variant_matches_functional(op):
    case = small_case(op, torch.int8)
    expected = getattr(torch.ops.quantviz, op)(*case.args)
    out = torch.empty(0, dtype=torch.int8)
    got = getattr(torch.ops.quantviz, op).out(*case.args, out=out)
    assert got.data_ptr() == out.data_ptr() and torch.equal(got, expected)
