"""The end-to-end numbers of one run (the run stage's), typed until ``to_dict()`` at the edge (summary.json, the
stage's metrics, the CLI's lines)::

    n = pipe.numerics()
    n.float_vs_runtime_sqnr_db, n.runtime_accuracy      # floats, or None when not measured
    n.to_dict()                                          # {"float_vs_reference_sqnr_db": 31.2, ...}: measured only
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class RunNumerics(Mapping):
    """Float, reference and runtime outputs compared end to end on the evaluation batches (None: not measured, e.g.
    no runtime here, no labels, no output scale). Read it by attribute; it is also a read-only mapping of the
    measured figures by their summary.json keys (``n["float_vs_runtime_sqnr_db"]``, ``"float_accuracy" in n``), so
    older callers keep reading it."""

    float_vs_reference_sqnr_db: float | None = None
    float_vs_runtime_sqnr_db: float | None = None
    reference_vs_runtime_sqnr_db: float | None = None
    reference_vs_runtime_max_lsb: float | None = None  # in LSB of the output's scale, when the output has one
    reference_vs_runtime_share_ge_1_lsb: float | None = None  # share of elements off by at least one LSB
    float_accuracy: float | None = None  # with labelled evaluation data
    runtime_accuracy: float | None = None
    # how far the runtime's error exceeds the quantization error (quantviz.measure.verdict; -inf: identical)
    runtime_error_over_quantization_error_db: float | None = None
    # language models (quantviz.measure.language, on held-out text): perplexity, next-token accuracy, top-1
    # agreement with the float model, and greedy generation's first step that differs from float's
    float_perplexity: float | None = None
    reference_perplexity: float | None = None
    runtime_perplexity: float | None = None
    runtime_perplexity_increase_pct: float | None = None  # 100 * (runtime / float - 1)
    float_next_token_accuracy: float | None = None
    reference_next_token_accuracy: float | None = None
    runtime_next_token_accuracy: float | None = None
    reference_top1_agreement: float | None = None
    runtime_top1_agreement: float | None = None
    generation_steps: float | None = None
    reference_first_divergent_step: float | None = None  # generation_steps + 1: never diverged
    runtime_first_divergent_step: float | None = None
    reference_generation_diverged: float | None = None  # 1.0 or 0.0
    runtime_generation_diverged: float | None = None
    decode_steps: float | None = None  # export_llm: forward calls in the runtime, the KV cache kept between them

    @classmethod
    def from_dict(cls, values: Mapping[str, float]) -> "RunNumerics":
        """The figures of ``values`` (a stage's metrics: other keys are left out)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in values.items() if k in names and v is not None})

    def to_dict(self) -> dict[str, float]:
        """The measured figures by their summary.json keys, in field order."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def __getitem__(self, key: str) -> float:
        value = getattr(self, key, None) if key in self._names() else None
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    @classmethod
    def _names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))
