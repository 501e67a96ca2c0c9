"""A small decoder called the way Hugging Face and ExecuTorch's llama call theirs: token ids positionally, the
padding mask and a dict of cached keys and values as keyword arguments, and a sequence length that varies::

    model(input_ids, attention_mask=mask, cache={"k": past_k, "v": past_v})   # logits (1, seq, VOCAB)

The spec declares the sequence length dynamic (``torch.export.Dim("seq", min=2, max=MAX_SEQ)``, torch.export's own
``dynamic_shapes``): calibration runs at SEQ tokens, the evaluation batches at SEQ and SHORT tokens, so the one
``.pte`` runs at two lengths. The cache holds PAST earlier positions (fixed). Random seeded weights.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from quantviz.model_spec import Batch, ModelSpec

VOCAB, DIM, PAST, SEQ, SHORT, MAX_SEQ = 64, 32, 4, 8, 5, 16


class KwargsDecoder(nn.Module):
    """Embedding, one attention block over the cached and new positions (causal, padding-masked), a GELU MLP,
    an LM head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(DIM, DIM), nn.Linear(DIM, DIM), nn.Linear(DIM, DIM)
        self.o_proj = nn.Linear(DIM, DIM)
        self.norm = nn.LayerNorm(DIM)
        self.up, self.down = nn.Linear(DIM, 2 * DIM), nn.Linear(2 * DIM, DIM)
        self.lm_head = nn.Linear(DIM, VOCAB)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                cache: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        h = self.embed(input_ids)  # (1, seq, DIM)
        q, k, v = self.q_proj(h), self.k_proj(h), self.v_proj(h)
        past = 0
        if cache is not None:
            past = cache["k"].shape[1]
            k, v = torch.cat([cache["k"], k], dim=1), torch.cat([cache["v"], v], dim=1)
        seq = input_ids.shape[1]
        scores = torch.matmul(q, k.transpose(1, 2)) / math.sqrt(DIM)  # (1, seq, past + seq)
        allowed = torch.arange(past + seq)[None, :] <= torch.arange(seq)[:, None] + past  # causal
        if attention_mask is not None:  # padding of the new tokens; cached positions are always valid
            keys = F.pad(attention_mask > 0, (past, 0), value=True)  # (1, past + seq)
            allowed = allowed[None] & keys[:, None, :]
        scores = scores.masked_fill(~allowed, -1e4)
        h = h + self.o_proj(torch.matmul(torch.softmax(scores, dim=-1), v))
        h = h + self.down(F.gelu(self.up(self.norm(h))))
        return self.lm_head(h)


def _batch(gen: torch.Generator, seq: int, pad: int = 0) -> Batch:
    ids = torch.randint(0, VOCAB, (1, seq), generator=gen)
    mask = torch.ones(1, seq, dtype=torch.long)
    mask[:, :pad] = 0
    cache = {"k": torch.randn(1, PAST, DIM, generator=gen), "v": torch.randn(1, PAST, DIM, generator=gen)}
    return Batch((ids,), {"attention_mask": mask, "cache": cache})


def make_spec() -> ModelSpec:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(11)
    calibration = [_batch(gen, SEQ, pad=i % 2) for i in range(4)]
    evaluation = [_batch(gen, SEQ), _batch(gen, SHORT, pad=1)]
    seq = torch.export.Dim("seq", min=2, max=MAX_SEQ)
    example = calibration[0]
    return ModelSpec(
        name="kwargs_decoder", model=KwargsDecoder().eval(), example_inputs=example.args,
        example_kwargs=example.kwargs, input_names=("input_ids",),
        dynamic_shapes={"input_ids": {1: seq}, "attention_mask": {1: seq}, "cache": {"k": None, "v": None}},
        calibration_batches=calibration, eval_batches=[(b, None) for b in evaluation])
