"""Is the runtime wrong, or only drifting? The run stage's one criterion.

The reference quantized model rounds every quantized activation to its grid: an error of up to ½ LSB at every
element of every layer, whose effect at the output is the float-vs-reference error. A runtime kernel that rounds
differently is off by at most 1 LSB on some elements, an error of the same kind and at most comparable size; through
many layers it compounds into drift (13–20 dB SQNR against the reference on deep random-weight models) but it
stays within a few times the quantization error. A kernel that computes something else (a wrong zero point, a
wrong layout) adds errors of many LSB at many elements and exceeds it by orders of magnitude. So::

    verdict = judge(float_out, reference_out, runtime_out, output_scale=0.05)
    verdict.wrong        # True only when the runtime's error power is > 10x (10 dB) the quantization error power
    verdict.excess_db    # 10·log10(runtime-vs-reference error power / float-vs-reference error power)

Drift is reported (SQNR and max LSB of the output scale), never failed; ``quantviz compare --fail-below-sqnr`` is
the gate for "accurate enough".
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from quantviz.measure.metrics import lsb_summary, sqnr_db

# The runtime's error power may exceed the reference model's own quantization error power by this much (dB)
# before the runtime is called wrong. Drift measured on deep zoo models stays below it (see docs/architecture.md).
WRONG_EXCESS_DB = 10.0
# Floor for the quantization error power, relative to the signal power, for models with nothing quantized.
_NOISE_FLOOR = 1e-6


@dataclass(frozen=True)
class RuntimeVerdict:
    """How the runtime's output compares with the reference model's, and whether that is an error."""

    wrong: bool                    # the lowered program computes something other than the reference model
    reference_vs_runtime_db: float  # SQNR of the runtime against the reference model
    excess_db: float               # runtime error power over the quantization error power, in dB
    max_lsb: float | None          # largest difference in LSB of the output scale (None: output not quantized)
    reason: str                    # one sentence: why it is drift, or why it is wrong

    def summary(self) -> str:
        """E.g. 'has an SQNR of 13.5 dB against the reference (max 7 LSB of the output scale)' (the higher, the
        closer: a "differs by 58 dB" would read as far apart)."""
        if math.isinf(self.reference_vs_runtime_db) and self.reference_vs_runtime_db > 0:
            return "matches the reference model exactly"
        lsb = f" (max {self.max_lsb:.0f} LSB of the output scale)" if self.max_lsb is not None else ""
        return f"has an SQNR of {self.reference_vs_runtime_db:.1f} dB against the reference{lsb}"


def judge(float_out: torch.Tensor, reference_out: torch.Tensor, runtime_out: torch.Tensor,
          output_scale: float | None = None) -> RuntimeVerdict:
    """The verdict for flattened outputs of the three levels on the same batches."""
    f, r, rt = (t.detach().double().flatten() for t in (float_out, reference_out, runtime_out))
    db = sqnr_db(r, rt)
    lsb = lsb_summary(r, rt, output_scale)["max_lsb"] if output_scale else None
    if bool(torch.isfinite(r).all()) and not bool(torch.isfinite(rt).all()):
        return RuntimeVerdict(True, db, math.inf, lsb, "the runtime produced NaN or infinite values where the "
                                                       "reference model is finite")
    runtime_noise = float(((r - rt) ** 2).mean()) if r.numel() else 0.0
    quant_noise = max(float(((f - r) ** 2).mean()) if r.numel() else 0.0,
                      (output_scale ** 2 / 12) if output_scale else 0.0,
                      float((r ** 2).mean()) * _NOISE_FLOOR if r.numel() else 0.0)
    if runtime_noise == 0.0:
        return RuntimeVerdict(False, db, -math.inf, lsb, "identical to the reference model")
    excess = 10.0 * math.log10(runtime_noise / quant_noise) if quant_noise > 0 else math.inf
    if excess > WRONG_EXCESS_DB:
        return RuntimeVerdict(True, db, excess, lsb, (
            f"its error against the reference is {excess:.0f} dB above the quantization error itself "
            f"(float vs reference); rounding differences of one LSB cannot add that much, so the lowered program "
            "computes something else"))
    return RuntimeVerdict(False, db, excess, lsb, (
        f"rounding drift: its error against the reference is {excess:+.1f} dB relative to the quantization error "
        f"(float vs reference), within the {WRONG_EXCESS_DB:.0f} dB that differently rounded kernels can add"))
