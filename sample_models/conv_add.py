"""conv2d + add + relu: the QuantizedConvAdd example of ExecuTorch's seed flow."""
import torch
from torch import nn

from quantviz.model_spec import ModelSpec


class ConvAdd(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv1(x) + self.conv2(x))


def make_spec() -> ModelSpec:
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = ConvAdd().eval()
    batches = [(torch.randn(1, 3, 16, 16, generator=gen),) for _ in range(8)]
    return ModelSpec(name="conv_add", model=model, example_inputs=batches[0], calibration_batches=batches,
                     eval_batches=[(b, None) for b in batches[4:]])
