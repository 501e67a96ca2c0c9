"""Metric functions, one definition each.

SQNR (dB) = 10·log10(Σref² / Σ(ref−x)²); identical tensors give +inf.
"""
from __future__ import annotations

import math

import torch


def sqnr_db(reference: torch.Tensor, x: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio of ``x`` against ``reference``, in dB.

    >>> sqnr_db(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]))
    inf
    """
    ref = reference.detach().double().flatten()
    err = ref - x.detach().double().flatten()
    noise = float((err * err).sum())
    signal = float((ref * ref).sum())
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of rows whose argmax equals the label."""
    return float((logits.argmax(dim=-1) == labels).double().mean())
