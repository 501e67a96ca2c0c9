"""A model with one submodule that torch.fx.symbolic_trace cannot follow.

``PadToEven`` branches in Python on a property of its input (its width). Symbolic tracing
sees a Proxy there and cannot decide the branch; ``torch.export`` specialises it for the
example input. Skip it with ``--skip-module pad`` and the rest of the model is quantized.
"""
import torch
from torch import nn
from torch.nn import functional as F

from quantviz.model_spec import ModelSpec


class PadToEven(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2 == 1:  # Python control flow on the input: not symbolically traceable
            x = F.pad(x, (0, 1, 0, 1))
        return x


class NotTraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pad = PadToEven()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x))
        x = self.pool(self.pad(x))
        return self.fc(torch.flatten(x, 1))


def make_spec() -> ModelSpec:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(2)
    batches = [(torch.randn(1, 3, 15, 15, generator=gen),) for _ in range(6)]
    return ModelSpec(name="not_traceable", model=NotTraceable().eval(), example_inputs=batches[0],
                     calibration_batches=batches[:4], eval_batches=[(b, None) for b in batches[4:]])
