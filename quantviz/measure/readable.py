"""End-to-end figures in words a person reads: a label with its unit instead of a raw key, "bit-exact" instead of an
infinite SQNR, the activation dtype the flow really uses, and what an SQNR level means for the scheme in use. The app's
run page and the HTML report show these; ``summary.json`` keeps the raw keys and values.

What the flow computes in is the flow's to say (``Flow.precision(config)``, a :class:`Precision`); the caller passes
it in::

    precision = pipe.flow.precision(pipe.config)     # Precision("uint8", 8) under fx
    rows = readable_numerics(pipe.numerics(), precision)
    rows[0]            # Reading("SQNR, float vs reference quantized model", "35.3 dB", "good for int8 ...")
    precision.activations                            # "uint8"
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

ActivationDtype = Literal["uint8", "int8", "int16"]


@dataclass(frozen=True)
class Precision:
    """The dtypes a flow's quantized model computes in under one config (declared by the flow:
    ``Flow.precision_of``)."""

    activations: ActivationDtype  # the quantized activations' dtype (uint8: fx's BackendConfig; int16: a16w8)
    weight_bits: int  # 8, or 4 (torchao's 8da4w, the int4w recipes)


# key -> (label, unit): what each figure of the run stage measures
LABELS: dict[str, tuple[str, str]] = {
    "float_vs_reference_sqnr_db": ("SQNR, float vs reference quantized model (the quantization error)", "dB"),
    "float_vs_runtime_sqnr_db": ("SQNR, float vs the program as run (quantization plus lowering)", "dB"),
    "reference_vs_runtime_sqnr_db": ("SQNR, reference vs the program as run (what lowering added)", "dB"),
    "reference_vs_runtime_max_lsb": ("largest output difference, reference vs run", "LSB of the output scale"),
    "reference_vs_runtime_share_ge_1_lsb": ("outputs that differ by 1 LSB or more, reference vs run", "%"),
    "runtime_error_over_quantization_error_db": ("error the run adds, relative to the quantization error", "dB"),
}
ACCURACY_KEYS = ("float_accuracy", "runtime_accuracy")  # shown once, as the page's headline figures


@dataclass(frozen=True)
class Reading:
    """One figure as the page shows it."""

    label: str  # what it measures, in words
    value: str  # with its unit; "bit-exact" for an infinite SQNR
    meaning: str = ""  # how to read it (the SQNR levels of the scheme, ...)


@dataclass(frozen=True)
class SqnrLevels:
    """What an end-to-end SQNR means for a scheme: rules of thumb, named as such. Their basis: one ``bits``-bit
    uniform quantizer on a full-range signal reaches 6.02·bits + 1.76 dB; a network's output, after many such
    steps, lands 15 to 25 dB under that when the quantization is sound."""

    scheme: str  # "int8", "uint8", "8-bit activations, 4-bit weights", ...
    good: float  # dB and above: good
    fair: float  # dB and above: fair; below: poor (try per-channel weights, keeping a layer float, ...)

    def judge(self, db: float) -> str:
        if math.isinf(db) and db > 0:
            return "bit-exact"
        word = "good" if db >= self.good else "fair" if db >= self.fair else "poor"
        return (f"{word} for {self.scheme} (rule of thumb: ≥ {self.good:.0f} dB good, "
                f"{self.fair:.0f}–{self.good:.0f} fair, below {self.fair:.0f} poor)")


def sqnr_levels(precision: Precision) -> SqnrLevels:
    """The SQNR levels of a scheme (4-bit weights and 16-bit activations have their own)::

        sqnr_levels(Precision("int8", 4)).scheme    # "8-bit activations with 4-bit weights"
    """
    if precision.weight_bits == 4:
        return SqnrLevels("8-bit activations with 4-bit weights", 20.0, 12.0)
    if precision.activations == "int16":
        return SqnrLevels("16-bit activations with 8-bit weights", 40.0, 30.0)
    return SqnrLevels(precision.activations, 30.0, 20.0)


def format_value(key: str, value: float) -> str:
    """``35.3 dB``, ``bit-exact``, ``3 LSB``, ``12.5 %``; a key this module does not know keeps its number."""
    unit = LABELS.get(key, ("", ""))[1]
    if isinstance(value, float) and math.isnan(value):
        return "not measured"
    if unit == "dB":
        if math.isinf(value):
            if key == "runtime_error_over_quantization_error_db":
                return "none: the run is bit-exact" if value < 0 else "the reference is exact, the run is not"
            return "bit-exact" if value > 0 else "no signal in common"
        return f"{value:.1f} dB"
    if unit == "%":
        return f"{value * 100:.1f} %"
    if unit.startswith("LSB"):
        return f"{value:g} LSB"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def readable_numerics(numerics: dict[str, float], precision: Precision) -> list[Reading]:
    """The run stage's figures without the accuracies (shown once, above), labelled, with units and meanings
    (``precision``: the flow's, ``Flow.precision(config)``)."""
    levels = sqnr_levels(precision)
    rows = []
    for key, value in numerics.items():
        if key in ACCURACY_KEYS:
            continue
        label = LABELS.get(key, (key, ""))[0]
        meaning = ""
        if key in ("float_vs_reference_sqnr_db", "float_vs_runtime_sqnr_db") and isinstance(value, float):
            meaning = levels.judge(value)
        elif key == "reference_vs_runtime_sqnr_db":
            meaning = "the run computes exactly what the reference model does" if math.isinf(value) and value > 0 \
                else "differently rounded kernels: compare with the quantization error (row below)"
        elif key == "runtime_error_over_quantization_error_db" and not math.isinf(value):
            meaning = "below 0 dB: the run adds less error than quantizing did" if value < 0 else \
                "above 0 dB: the run adds more error than quantizing did"
        rows.append(Reading(label, format_value(key, value), meaning))
    return rows
