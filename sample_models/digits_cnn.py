"""A small CNN for scikit-learn's bundled 8x8 digits dataset (no download).

The weights in ``digits_cnn.pt`` (a plain state_dict, loaded with ``weights_only=True``)
come from ``python -m sample_models.digits_cnn --train``. The data split is fixed by a
seed: 128 images for calibration, 384 for evaluation, the rest for training.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

from quantviz.model_spec import ModelSpec

WEIGHTS = Path(__file__).with_name("digits_cnn.pt")
BATCH, N_CALIB, N_EVAL = 32, 128, 384


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16 * 2 * 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


def load_splits() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Digits as float images in [0, 1], shape (N, 1, 8, 8), split by a fixed permutation."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(digits.target, dtype=torch.int64)
    order = torch.tensor(np.random.default_rng(0).permutation(len(labels)))
    calib, evaluation, train = order[:N_CALIB], order[N_CALIB:N_CALIB + N_EVAL], order[N_CALIB + N_EVAL:]
    return {k: (images[i], labels[i]) for k, i in (("calib", calib), ("eval", evaluation), ("train", train))}


def _batches(x: torch.Tensor, y: torch.Tensor) -> list[tuple[tuple[torch.Tensor], torch.Tensor]]:
    return [((x[i:i + BATCH],), y[i:i + BATCH]) for i in range(0, len(y), BATCH)]


def make_spec() -> ModelSpec:
    model = DigitsCNN()
    model.load_state_dict(torch.load(WEIGHTS, weights_only=True))
    model.eval()
    splits = load_splits()
    calib = [inputs for inputs, _ in _batches(*splits["calib"])]
    return ModelSpec(name="digits_cnn", model=model, example_inputs=calib[0], calibration_batches=calib,
                     eval_batches=_batches(*splits["eval"]))


def train(epochs: int = 60) -> float:
    """Train from a fixed seed and write ``digits_cnn.pt``; returns eval accuracy."""
    torch.manual_seed(0)
    splits = load_splits()
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = splits["train"]
    for _ in range(epochs):
        perm = torch.randperm(len(y))
        for i in range(0, len(y), BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    xe, ye = splits["eval"]
    with torch.no_grad():
        acc = (model(xe).argmax(1) == ye).float().mean().item()
    torch.save(model.state_dict(), WEIGHTS)
    return acc


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", action="store_true")
    if parser.parse_args().train:
        print(f"eval accuracy {train():.4f}, weights at {WEIGHTS} ({WEIGHTS.stat().st_size} bytes)")
