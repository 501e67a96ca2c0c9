import math

import torch

from quantviz.numerics import accuracy, sqnr_db


def test_identical_tensors_have_infinite_sqnr():
    x = torch.randn(100)
    assert sqnr_db(x, x.clone()) == math.inf


def test_sqnr_matches_the_formula_by_hand():
    ref = torch.tensor([3.0, 4.0])  # signal energy 25
    out = torch.tensor([3.0, 3.0])  # noise energy 1
    assert sqnr_db(ref, out) == 10 * math.log10(25.0)


def test_accuracy_counts_argmax_hits():
    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert accuracy(logits, torch.tensor([1, 0, 0])) == 2 / 3


def test_identical_tensors_are_zero_lsb_apart():
    from quantviz.measure.metrics import lsb_summary

    x = torch.randn(50)
    assert lsb_summary(x, x.clone(), 0.1) == {"max_lsb": 0.0, "share_ge_1_lsb": 0.0}


def test_a_one_lsb_shift_is_exactly_one_lsb():
    from quantviz.measure.metrics import lsb_errors, lsb_summary

    scale = 0.0471
    ref = torch.arange(-20, 20, dtype=torch.float32) * scale
    shifted = ref.clone()
    shifted[::4] += scale
    assert lsb_errors(ref, shifted, scale).max() == 1.0
    assert lsb_summary(ref, shifted, scale) == {"max_lsb": 1.0, "share_ge_1_lsb": 0.25}


def test_pair_metrics_by_hand():
    from quantviz.measure.metrics import pair_metrics

    m = pair_metrics(torch.tensor([3.0, 4.0]), torch.tensor([3.0, 3.0]), scale=0.5)
    assert m.sqnr_db == 10 * math.log10(25.0)
    assert m.max_abs_error == 1.0 and m.mean_abs_error == 0.5
    assert m.max_lsb == 2.0 and m.share_ge_1_lsb == 0.5
    assert abs(m.cosine - (9 + 12) / (5 * math.sqrt(18))) < 1e-12
    assert pair_metrics(torch.tensor([3.0]), torch.tensor([3.0])).max_lsb is None  # no scale: no LSB figures
