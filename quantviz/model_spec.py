"""What a model factory hands to quantviz: the model and the data to drive it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

Inputs = tuple[Any, ...]


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
