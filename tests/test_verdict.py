"""The run stage's criterion: rounding drift is reported, a runtime that computes something else fails."""
import math

import torch

from quantviz.measure.verdict import WRONG_EXCESS_DB, judge


def _levels(seed: int = 0, n: int = 4000, scale: float = 0.05):
    g = torch.Generator().manual_seed(seed)
    float_out = torch.randn(n, generator=g) * 2
    reference = torch.round(float_out / scale) * scale  # quantized to the output grid
    return float_out, reference, scale


def test_identical_outputs_are_not_wrong_and_say_so():
    f, r, scale = _levels()
    v = judge(f, r, r.clone(), scale)
    assert not v.wrong and v.max_lsb == 0.0 and v.summary() == "matches the reference model exactly"


def test_one_lsb_off_on_a_third_of_the_elements_is_drift_not_an_error():
    f, r, scale = _levels()
    g = torch.Generator().manual_seed(1)
    off = (torch.rand(r.shape, generator=g) < 0.33).double() * torch.sign(torch.randn(r.shape, generator=g))
    v = judge(f, r, r + off * scale, scale)
    assert not v.wrong and v.max_lsb == 1.0
    assert v.excess_db < WRONG_EXCESS_DB
    assert "has an SQNR of" in v.summary() and "dB against the reference" in v.summary() and "max 1 LSB" in v.summary()


def test_deep_drift_with_a_low_sqnr_is_still_drift_when_quantization_error_is_as_large():
    """Deep random-weight models: runtime vs reference 13 dB, float vs reference about as far. Not an error."""
    g = torch.Generator().manual_seed(2)
    r = torch.randn(4000, generator=g)
    f = r + 0.25 * torch.randn(4000, generator=g)   # quantization error ~12 dB
    rt = r + 0.22 * torch.randn(4000, generator=g)  # drift ~13 dB
    v = judge(f, r, rt, None)
    assert 12 < v.reference_vs_runtime_db < 14.5 and not v.wrong and v.max_lsb is None


def test_a_wrong_zero_point_is_an_error():
    f, r, scale = _levels()
    v = judge(f, r, r + 40 * scale, scale)  # every element 40 LSB off
    assert v.wrong and v.excess_db > WRONG_EXCESS_DB and v.max_lsb == 40.0
    assert "computes something else" in v.reason


def test_nan_in_the_runtime_is_an_error():
    f, r, scale = _levels()
    rt = r.clone()
    rt[3] = math.nan
    assert judge(f, r, rt, scale).wrong


def test_nothing_quantized_still_needs_a_near_exact_runtime():
    r = torch.linspace(-1, 1, 100)
    assert not judge(r, r, r + 1e-7, None).wrong
    assert judge(r, r, -r, None).wrong
