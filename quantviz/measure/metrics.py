"""Metric functions, one definition each.

SQNR (dB) = 10·log10(Σref² / Σ(ref−x)²); identical tensors give +inf.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

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


def lsb_errors(reference: torch.Tensor, x: torch.Tensor, scale: float) -> torch.Tensor:
    """|reference − x| / scale: the error in units of the output's quantization step (LSB).

    Values rounded to the nearest 1e-3 LSB so float noise in dequantized outputs does not read as 1 LSB.

    >>> lsb_errors(torch.tensor([0.5, 1.0]), torch.tensor([0.5, 1.25]), 0.25).tolist()
    [0.0, 1.0]
    """
    err = (reference.detach().double().flatten() - x.detach().double().flatten()).abs() / scale
    return torch.round(err * 1000) / 1000


def lsb_summary(reference: torch.Tensor, x: torch.Tensor, scale: float) -> dict[str, float]:
    """Max LSB error and the share of elements off by at least one LSB."""
    err = lsb_errors(reference, x, scale)
    return {"max_lsb": float(err.max()) if err.numel() else 0.0,
            "share_ge_1_lsb": float((err >= 1.0).double().mean()) if err.numel() else 0.0}


def cosine(reference: torch.Tensor, x: torch.Tensor) -> float:
    """Cosine similarity of the flattened tensors (1.0 when both are zero)."""
    a, b = reference.detach().double().flatten(), x.detach().double().flatten()
    na, nb = float(a.norm()), float(b.norm())
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(a @ b) / (na * nb)


@dataclass(frozen=True)
class PairMetrics:
    """Every metric for one pair of tensors (``pair_metrics``)."""

    sqnr_db: float  # SQNR of the second against the first (dB; inf when identical)
    cosine: float  # cosine similarity of the flattened tensors
    max_abs_error: float  # max |a - b|
    mean_abs_error: float  # mean |a - b|
    max_lsb: float | None = None  # max |a - b| in LSB of the quantized output's scale; None without a scale
    share_ge_1_lsb: float | None = None  # share of elements off by at least one LSB (None as ``max_lsb``)


def pair_metrics(reference: torch.Tensor, x: torch.Tensor, scale: float | None = None) -> PairMetrics:
    """Every metric for one pair of tensors: SQNR (dB), cosine, max and mean absolute error and, given the
    quantized output's ``scale``, the max LSB error and the share of elements off by at least one LSB::

        pair_metrics(torch.tensor([3.0, 4.0]), torch.tensor([3.0, 3.0]), scale=0.5).max_lsb   # 2.0
    """
    ref, got = reference.detach().double().flatten(), x.detach().double().flatten()
    err = (ref - got).abs()
    lsb = lsb_summary(ref, got, scale) if scale else {}
    return PairMetrics(sqnr_db(ref, got), cosine(ref, got), float(err.max()) if err.numel() else 0.0,
                       float(err.mean()) if err.numel() else 0.0, lsb.get("max_lsb"), lsb.get("share_ge_1_lsb"))
