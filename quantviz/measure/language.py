"""Language-model figures: perplexity, next-token accuracy, top-1 agreement with the float model, and greedy
generation with the first step where a quantized model's token differs from the float model's.

A language-model user judges a quantized model by these, not by SQNR of the logits::

    figures = language_figures(task, targets, {"float": f, "reference": r, "runtime": rt},
                               {"float": f_step, "reference": r_step, "runtime": rt_step})
    figures.perplexity["runtime"], figures.first_divergence["runtime"]
    figures.metrics()   # flat numbers for summary.json: "runtime_perplexity", "runtime_top1_agreement", ...
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from quantviz.model_spec import LanguageModelTask

Step = Callable[[torch.Tensor], torch.Tensor]  # token ids (1, seq) -> logits (1, seq, vocab)
LEVELS = ("float", "reference", "runtime")


def perplexity(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """exp(mean next-token cross-entropy) of ``logits`` (..., vocab) against ``targets`` (...):
    uniform logits over V tokens give V.

    >>> round(perplexity(torch.zeros(2, 3, 10), torch.zeros(2, 3, dtype=torch.long)), 6)
    10.0
    """
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), targets.reshape(-1))
    return math.exp(float(loss))


def top1_agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of positions where ``a`` and ``b`` (..., vocab) have the same most likely token."""
    return float((a.argmax(-1) == b.argmax(-1)).double().mean())


def greedy(step: Step, prompt: torch.Tensor, steps: int) -> list[int]:
    """``steps`` tokens generated greedily after ``prompt`` (1, seq): each step feeds the last ``seq`` tokens (the
    model takes a fixed length) and appends the argmax of the last position's logits."""
    window = prompt.clone()
    out: list[int] = []
    for _ in range(steps):
        logits = step(window)
        token = int(logits[0, -1].argmax())
        out.append(token)
        window = torch.cat([window[:, 1:], torch.tensor([[token]], dtype=window.dtype)], dim=1)
    return out


def first_difference(a: list[int], b: list[int]) -> int | None:
    """The first step (1-based) where ``a`` and ``b`` differ, or None when they agree throughout:
    ``first_difference([1, 2, 3], [1, 5, 3]) -> 2``."""
    return next((i + 1 for i, (x, y) in enumerate(zip(a, b)) if x != y), None)


@dataclass
class LanguageFigures:
    """Perplexity, accuracy and agreement per level on held-out text; greedy generation per level."""

    text: str  # what the held-out text is
    positions: int  # next-token predictions the figures average over
    perplexity: dict[str, float] = field(default_factory=dict)  # level -> perplexity
    accuracy: dict[str, float] = field(default_factory=dict)  # level -> share of next tokens predicted (top-1)
    agreement: dict[str, float] = field(default_factory=dict)  # reference/runtime -> top-1 agreement with float
    generated: dict[str, list[int]] = field(default_factory=dict)  # level -> generated token ids
    first_divergence: dict[str, int | None] = field(default_factory=dict)  # level -> first step differing from float
    steps: int = 0
    decoded: dict[str, str] = field(default_factory=dict)  # level -> generated text (task.decode)

    def metrics(self) -> dict[str, float]:
        """Flat numbers for summary.json and blame/recover targets. A generation that never differs from the
        float model's reports ``steps + 1`` as its first divergent step (and ``..._diverged`` 0)."""
        out: dict[str, float] = {}
        for level, v in self.perplexity.items():
            out[f"{level}_perplexity"] = v
        for level, v in self.accuracy.items():
            out[f"{level}_next_token_accuracy"] = v
        for level, v in self.agreement.items():
            out[f"{level}_top1_agreement"] = v
        if "float" in self.perplexity and "runtime" in self.perplexity:
            out["runtime_perplexity_increase_pct"] = 100.0 * (self.perplexity["runtime"] / self.perplexity["float"] - 1)
        out["generation_steps"] = float(self.steps)
        for level, step in self.first_divergence.items():
            out[f"{level}_first_divergent_step"] = float(self.steps + 1 if step is None else step)
            out[f"{level}_generation_diverged"] = float(step is not None)
        return out

    def notes(self) -> list[str]:
        """Lines for the run page and the CLI."""
        levels = [lv for lv in LEVELS if lv in self.perplexity]
        lines = [f"language model, on {self.text} ({self.positions:,} next-token predictions): perplexity "
                 + ", ".join(f"{lv} {self.perplexity[lv]:.3f}" for lv in levels)
                 + "; next-token accuracy " + ", ".join(f"{lv} {self.accuracy[lv]:.1%}" for lv in levels)
                 + "; top-1 agreement with float " + ", ".join(f"{lv} {self.agreement[lv]:.1%}"
                                                                for lv in levels if lv in self.agreement)]
        for level in (lv for lv in LEVELS if lv in self.first_divergence):
            step = self.first_divergence[level]
            said = f"{self.decoded[level]!r}" if level in self.decoded else ""
            if step is None:
                lines.append(f"greedy generation, {self.steps} steps: {level} makes the float model's tokens at every "
                             f"step {said}".rstrip())
            else:
                lines.append(f"greedy generation, {self.steps} steps: {level} first differs from float at step {step} "
                             f"{said}".rstrip())
        if "float" in self.decoded:
            lines.append(f"float generation: {self.decoded['float']!r}")
        return lines

    def to_dict(self) -> dict:
        return {"text": self.text, "positions": self.positions, "perplexity": self.perplexity,
                "next_token_accuracy": self.accuracy, "top1_agreement_with_float": self.agreement,
                "generation": {"steps": self.steps, "tokens": self.generated, "text": self.decoded,
                               "first_divergent_step": self.first_divergence}}


def language_figures(task: LanguageModelTask, targets: list[torch.Tensor], logits: dict[str, list[torch.Tensor]],
                     steps: dict[str, Step]) -> LanguageFigures:
    """The figures of each level in ``logits`` (per batch, (batch, seq, vocab)) against ``targets`` (per batch,
    (batch, seq)), and greedy generation with each level's ``steps`` callable ("float" must be one)."""
    y = torch.cat([t.reshape(-1) for t in targets])
    flat = {lv: torch.cat([o.reshape(-1, o.shape[-1]) for o in outs]) for lv, outs in logits.items()}
    figures = LanguageFigures(task.text or "held-out text", int(y.numel()), steps=task.steps)
    for level, z in flat.items():
        figures.perplexity[level] = perplexity(z, y)
        figures.accuracy[level] = float((z.argmax(-1) == y).double().mean())
        if level != "float":
            figures.agreement[level] = top1_agreement(z, flat["float"])
    for level, step in steps.items():
        figures.generated[level] = greedy(step, task.prompt, task.steps)
        if task.decode is not None:
            figures.decoded[level] = task.decode(figures.generated[level])
    for level, tokens in figures.generated.items():
        if level != "float":
            figures.first_divergence[level] = first_difference(figures.generated["float"], tokens)
    return figures
