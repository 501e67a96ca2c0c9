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
