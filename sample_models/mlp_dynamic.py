"""Three linear layers: the textbook case for dynamic quantization."""
import torch
from torch import nn

from quantviz.model_spec import ModelSpec


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


def make_spec() -> ModelSpec:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    model = MLP().eval()
    batches = [(torch.randn(4, 64, generator=gen),) for _ in range(8)]
    return ModelSpec(name="mlp_dynamic", model=model, example_inputs=batches[0], calibration_batches=batches[:4],
                     eval_batches=[(b, None) for b in batches[4:]])
