"""Glue shared by the zoo samples (not a sample itself): deterministic synthetic images,
batch-norm statistics re-estimated from random batches, and the ``ModelSpec``.

The zoo models themselves (``zoo_*.py``) are written the way third-party model libraries
write them (timm, the papers' reference code); only this file knows about quantviz.
"""
from __future__ import annotations

import torch
from torch import nn

from quantviz.model_spec import ModelSpec

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


class Mlp(nn.Module):
    """The transformer MLP of timm's ViT and of Swin (Linear → GELU → Linear), shared by both samples."""

    def __init__(self, in_features: int, hidden_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


@torch.no_grad()
def trained_like_weights(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """Redraw every Conv/Linear weight with std 1/sqrt(fan_in). Transformer-style inits (trunc_normal std 0.02)
    make a random model's residual branches vanish next to the shortcut; trained weights are larger."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * m.weight[0].numel() ** -0.5)
    return model


@torch.no_grad()
def reestimate_batchnorm(model: nn.Module, input_shape: tuple[int, ...], *, batches: int = 4, batch_size: int = 8,
                         seed: int = 1234) -> nn.Module:
    """Replace each BatchNorm's running statistics by the cumulative average over a few random batches
    (train mode, no gradient), then put the model in eval mode. Weights are untouched."""
    bns = [m for m in model.modules() if isinstance(m, _BN)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: the estimate does not depend on the init
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(batches):
        model(torch.randn(batch_size, *input_shape[1:], generator=gen))
    for m, momentum in zip(bns, saved):
        m.momentum = momentum
    return model.eval()


def image_spec(name: str, model: nn.Module, input_shape: tuple[int, ...], *, seed: int = 0,
               calibration: int = 4, evaluation: int = 2) -> ModelSpec:
    """A spec for an image model: batch-norm re-estimated, then ``calibration`` + ``evaluation`` seeded batches
    of ``input_shape`` (batch 1), the first calibration batch doubling as the example input; no labels."""
    reestimate_batchnorm(model, input_shape, seed=seed + 1)
    gen = torch.Generator().manual_seed(seed + 2)
    batches = [(torch.randn(*input_shape, generator=gen),) for _ in range(calibration + evaluation)]
    return ModelSpec(name=name, model=model, example_inputs=batches[0], calibration_batches=batches[:calibration],
                     eval_batches=[(b, None) for b in batches[calibration:]])
