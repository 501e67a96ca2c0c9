"""Embedding + mean over tokens + linear: a bag-of-words text classifier."""
import torch
from torch import nn

from quantviz.model_spec import ModelSpec


class EmbeddingClassifier(nn.Module):
    def __init__(self, vocab: int = 200, dim: int = 32, classes: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.fc = nn.Linear(dim, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(tokens).mean(dim=1))


def make_spec() -> ModelSpec:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(3)
    batches = [(torch.randint(0, 200, (4, 12), generator=gen),) for _ in range(8)]
    return ModelSpec(name="embedding", model=EmbeddingClassifier().eval(), example_inputs=batches[0],
                     calibration_batches=batches[:4], eval_batches=[(b, None) for b in batches[4:]])
