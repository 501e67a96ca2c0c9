"""Glue shared by the zoo samples (not a sample itself): deterministic synthetic images, token ids with
padding masks, log-mel spectrograms and raw audio, batch-norm statistics re-estimated from random batches,
and the ``ModelSpec``.

The zoo models themselves (``zoo_*.py``) are written the way third-party model libraries
write them (timm, the papers' reference code); only this file knows about quantviz.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

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
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) and parametrize.is_parametrized(m, "weight"):
            m.weight = torch.randn(m.weight.shape, generator=gen) * m.weight[0].numel() ** -0.5  # weight_norm'ed
        elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * m.weight[0].numel() ** -0.5)
        elif type(m).__name__ == "Conv1D":  # Hugging Face's GPT-2 "Conv1D": a Linear stored (in, out)
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * m.weight.shape[0] ** -0.5)
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
               calibration: int = 4, evaluation: int = 2, bn_batches: int = 4, bn_batch_size: int = 8) -> ModelSpec:
    """A spec for an image model: batch-norm re-estimated (over ``bn_batches`` random batches of ``bn_batch_size``),
    then ``calibration`` + ``evaluation`` seeded batches of ``input_shape`` (batch 1), the first calibration batch
    doubling as the example input; no labels."""
    reestimate_batchnorm(model, input_shape, batches=bn_batches, batch_size=bn_batch_size, seed=seed + 1)
    gen = torch.Generator().manual_seed(seed + 2)
    batches = [(torch.randn(*input_shape, generator=gen),) for _ in range(calibration + evaluation)]
    return ModelSpec(name=name, model=model, example_inputs=batches[0], calibration_batches=batches[:calibration],
                     eval_batches=[(b, None) for b in batches[calibration:]])


# -- sequence models: token ids, log-mel spectrograms, raw audio ----------------------------------------------------
def token_batches(count: int, batch_size: int, seq_len: int, vocab_size: int, *, seed: int, pad_token_id: int = 0,
                  first_token_id: int | None = None, last_token_id: int | None = None, with_mask: bool = True,
                  min_len: int | None = None) -> list[tuple[torch.Tensor, ...]]:
    """``count`` batches of int64 token ids (B, S) drawn uniformly over the vocabulary (above the special ids), and
    with ``with_mask`` their int64 attention masks: row 0 is full, the other rows are right-padded to a random
    length in [min_len, seq_len) with ``pad_token_id`` and mask 0. ``first_token_id``/``last_token_id`` put a
    [CLS]/[SEP]-like id at the start and at the end of each row's real tokens."""
    gen = torch.Generator().manual_seed(seed)
    low = 1 + max(i for i in (pad_token_id, first_token_id, last_token_id) if i is not None)
    min_len = min_len or seq_len // 2
    batches = []
    for _ in range(count):
        ids = torch.randint(low, vocab_size, (batch_size, seq_len), generator=gen)
        mask = torch.ones(batch_size, seq_len, dtype=torch.long)
        for row in range(batch_size):
            length = seq_len if row == 0 or not with_mask else int(torch.randint(min_len, seq_len, (1,), generator=gen))
            if first_token_id is not None:
                ids[row, 0] = first_token_id
            if last_token_id is not None:
                ids[row, length - 1] = last_token_id
            ids[row, length:] = pad_token_id
            mask[row, length:] = 0
        batches.append((ids, mask) if with_mask else (ids,))
    return batches


def synthetic_speech(samples: int, *, gen: torch.Generator, sample_rate: int = 16000) -> torch.Tensor:
    """A speech-like waveform: a few voiced segments (a gliding pitch with its harmonics under a smooth envelope)
    plus background noise, zero mean and unit variance the way speech feature extractors normalise it."""
    t = torch.arange(samples, dtype=torch.float64) / sample_rate
    duration = samples / sample_rate
    wave = 0.02 * torch.randn(samples, generator=gen, dtype=torch.float64)
    for _ in range(3):
        u = torch.rand(4, generator=gen, dtype=torch.float64)
        length = duration * (0.2 + 0.3 * float(u[0]))
        centre = duration * float(u[1])
        f0, slope = 100 + 150 * float(u[2]), float(u[3]) - 0.5  # pitch glides by up to +-50% per second
        phase = 2 * math.pi * f0 * (t + slope * (t - centre) ** 2 / 2)
        envelope = torch.exp(-0.5 * ((t - centre) / (length / 4)) ** 2)
        for h in range(1, 6):
            wave += envelope * torch.sin(h * phase) / h
    wave = (wave - wave.mean()) / wave.std()
    return wave.float()


def _mel_filters(n_fft: int, n_mels: int, sample_rate: int) -> torch.Tensor:
    """Triangular filters evenly spaced on the HTK mel scale, (n_mels, n_fft // 2 + 1), area-normalised."""
    def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
        return 2595.0 * torch.log10(1.0 + f / 700.0)

    def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = mel_to_hz(torch.linspace(0, float(hz_to_mel(torch.tensor(sample_rate / 2.0))), n_mels + 2,
                                     dtype=torch.float64))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    tri = torch.clamp(torch.minimum((freqs - lower) / (centre - lower), (upper - freqs) / (upper - centre)), min=0)
    return tri * (2.0 / (upper - lower))


def log_mel_batches(count: int, frames: int, *, seed: int, n_mels: int = 80, batch_size: int = 1,
                    sample_rate: int = 16000, n_fft: int = 400, hop_length: int = 160) -> list[tuple[torch.Tensor]]:
    """``count`` batches of Whisper-style log-mel features (B, n_mels, frames): synthetic speech, a 25 ms Hann STFT
    with a 10 ms hop, power through mel filters, log10, clamped to 8 below the maximum, scaled by (x + 4) / 4."""
    gen = torch.Generator().manual_seed(seed)
    filters = _mel_filters(n_fft, n_mels, sample_rate).float()
    batches = []
    for _ in range(count):
        rows = []
        for _ in range(batch_size):
            wave = synthetic_speech(frames * hop_length, gen=gen, sample_rate=sample_rate)
            stft = torch.stft(wave, n_fft, hop_length, window=torch.hann_window(n_fft), return_complex=True)
            power = stft[..., :-1].abs() ** 2
            log_spec = torch.clamp(filters @ power, min=1e-10).log10()
            log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
            rows.append((log_spec + 4.0) / 4.0)
        batches.append((torch.stack(rows),))
    return batches


def audio_batches(count: int, samples: int, *, seed: int, batch_size: int = 1) -> list[tuple[torch.Tensor]]:
    """``count`` batches of normalised raw 16 kHz audio (B, samples)."""
    gen = torch.Generator().manual_seed(seed)
    return [(torch.stack([synthetic_speech(samples, gen=gen) for _ in range(batch_size)]),) for _ in range(count)]


def sequence_spec(name: str, model: nn.Module, batches: list[tuple[torch.Tensor, ...]],
                  input_names: tuple[str, ...], *, calibration: int = 4) -> ModelSpec:
    """A spec for a sequence model: the first ``calibration`` batches calibrate (the first doubles as the example
    input), the rest evaluate; no labels."""
    assert len(batches) > calibration, "evaluation needs batches of its own"
    return ModelSpec(name=name, model=model.eval(), example_inputs=batches[0],
                     calibration_batches=batches[:calibration],
                     eval_batches=[(b, None) for b in batches[calibration:]], input_names=input_names)
