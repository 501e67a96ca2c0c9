"""What a model factory hands to quantviz: the model and the data to drive it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

Inputs = tuple[Any, ...]


@dataclass
class LanguageModelTask:
    """Marks a causal language model: its output is next-token logits ``(batch, seq, vocab)``, and the labels of
    ``ModelSpec.eval_batches`` are the next tokens ``(batch, seq)`` of held-out text. The run stage then reports
    perplexity, next-token accuracy and top-1 agreement with the float model for the reference and the runtime, and
    generates ``steps`` tokens greedily from ``prompt`` with each, naming the first step where they differ::

        LanguageModelTask(prompt=ids[None, :64], steps=32, decode=lambda ids: "".join(map(chr, ids)))

    The model takes one input, token ids of the example's length; generation slides that window along.
    """

    prompt: torch.Tensor  # (1, seq) token ids generation starts from, as long as the example input
    steps: int = 32  # greedy generation steps
    decode: Callable[[list[int]], str] | None = None  # ids -> text, to show what was generated
    text: str = ""  # what the held-out text is, e.g. "pydoc_data.topics: 16 held-out topics"


@dataclass
class ModelSpec:
    """A model plus the data the flow needs.

    Example::

        spec = ModelSpec(name="mine", model=MyNet().eval(), example_inputs=(torch.randn(1, 3, 32, 32),))

    ``calibration_batches`` feed the observers (default: the example inputs once).
    ``eval_batches`` are ``(inputs, labels)`` pairs; with labels, quantviz reports task accuracy.
    Every batch must have the example inputs' shapes: the ``.pte`` is built for those shapes.
    Inputs may be integer tensors (token ids, masks); ``input_names`` names them in order, e.g.
    ``ModelSpec("enc", model, (ids, mask), input_names=("input_ids", "attention_mask"))``.
    """

    name: str
    model: torch.nn.Module
    example_inputs: Inputs
    calibration_batches: list[Inputs] | None = None
    eval_batches: list[tuple[Inputs, torch.Tensor | None]] | None = None
    description: str = ""
    exported_program: Any = None  # set when the model came from a .pt2 file
    input_names: tuple[str, ...] = ()  # forward's argument names, e.g. ("input_ids", "attention_mask"); () = unnamed
    language_model: LanguageModelTask | None = None  # a causal LM: perplexity, agreement, generation (run stage)
    extra: dict[str, Any] = field(default_factory=dict)

    def input_name(self, index: int) -> str:
        """The name of input ``index`` (``input_names``), or ``input{index}``."""
        return self.input_names[index] if index < len(self.input_names) else f"input{index}"

    def calibration_data(self, limit: int) -> list[Inputs]:
        """The first ``limit`` calibration batches, or the example inputs when there are none."""
        batches = self.calibration_batches or [self.example_inputs]
        return list(batches[: max(1, limit)])

    def comparison_batches(self) -> list[Inputs]:
        """Inputs used for end-to-end numerics: evaluation data if any, else calibration data."""
        if self.eval_batches:
            return [inputs for inputs, _ in self.eval_batches]
        return list(self.calibration_batches or [self.example_inputs])
