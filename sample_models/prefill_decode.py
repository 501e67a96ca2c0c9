"""A small decoder shipped the way language models are: one ``.pte`` with two methods sharing its weights, a
prompt step and a one-token step, the KV cache passed in and returned (plain tensors, no mutable buffers)::

    logits, k, v = model(prompt)                       # forward = prefill: (1, seq) ids, seq in [2, MAX_PROMPT]
    logits, k, v = model.decode(token, pos, k, v)      # decode: (1, 1) id at position pos (1,), cache (1, CACHE, DIM)

``forward`` is the prefill (its sequence length is dynamic: ``torch.export.Dim("prompt", min=2, max=16)``); it
returns the prompt's keys and values, which the caller writes into a fixed-size cache of CACHE positions.
``decode`` takes one token, its position and that cache, writes its own key and value at the position
(``torch.where`` on a position mask: no data-dependent indexing) and attends to positions up to it; it returns the
logits and the updated cache. ``ModelSpec.methods`` declares ``decode`` beside forward, so the torchao flow
exports, lowers and runs both in one ``.pte``. Random seeded weights.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from quantviz.model_spec import Method, ModelSpec

VOCAB, DIM, CACHE, PROMPT, SHORT, MAX_PROMPT = 64, 64, 24, 8, 5, 16


class PrefillDecode(nn.Module):
    """Embedding, one causal attention block, a GELU MLP, an LM head; ``forward`` (prefill) and ``decode`` share
    every weight."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(DIM, DIM), nn.Linear(DIM, DIM), nn.Linear(DIM, DIM)
        self.o_proj = nn.Linear(DIM, DIM)
        self.norm = nn.LayerNorm(DIM)
        self.up, self.down = nn.Linear(DIM, 2 * DIM), nn.Linear(2 * DIM, DIM)
        self.lm_head = nn.Linear(DIM, VOCAB)

    def _out(self, h: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        h = h + self.o_proj(attended)
        h = h + self.down(F.gelu(self.up(self.norm(h))))
        return self.lm_head(h)

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Prefill: the prompt's logits (1, seq, VOCAB) and its keys and values (1, seq, DIM) each."""
        h = self.embed(input_ids)
        q, k, v = self.q_proj(h), self.k_proj(h), self.v_proj(h)
        seq = input_ids.shape[1]
        scores = torch.matmul(q, k.transpose(1, 2)) / math.sqrt(DIM)
        causal = torch.arange(seq)[None, :] <= torch.arange(seq)[:, None]
        scores = scores.masked_fill(~causal, -1e4)
        return self._out(h, torch.matmul(torch.softmax(scores, dim=-1), v)), k, v

    def decode(self, token: torch.Tensor, pos: torch.Tensor, k_cache: torch.Tensor,
               v_cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One token (1, 1) at position ``pos`` (1,): its logits (1, 1, VOCAB) and the cache with its key and value
        written at ``pos`` (1, CACHE, DIM) each."""
        h = self.embed(token)
        q, k, v = self.q_proj(h), self.k_proj(h), self.v_proj(h)
        at = (torch.arange(CACHE) == pos)[None, :, None]  # (1, CACHE, 1)
        k_cache, v_cache = torch.where(at, k, k_cache), torch.where(at, v, v_cache)
        scores = torch.matmul(q, k_cache.transpose(1, 2)) / math.sqrt(DIM)  # (1, 1, CACHE)
        scores = scores.masked_fill((torch.arange(CACHE) > pos)[None, None, :], -1e4)
        return self._out(h, torch.matmul(torch.softmax(scores, dim=-1), v_cache)), k_cache, v_cache


def prompt(gen: torch.Generator, seq: int) -> tuple[torch.Tensor]:
    return (torch.randint(0, VOCAB, (1, seq), generator=gen),)


def decode_inputs(model: PrefillDecode, ids: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """The decode step after prefilling ``ids`` with the float model: the next token at position ``len(ids)``, the
    prompt's keys and values in a CACHE-position cache (zeros after them)."""
    with torch.no_grad():
        _, k, v = model(ids)
    seq = ids.shape[1]
    k_cache, v_cache = torch.zeros(1, CACHE, DIM), torch.zeros(1, CACHE, DIM)
    k_cache[:, :seq], v_cache[:, :seq] = k, v
    return (torch.randint(0, VOCAB, (1, 1), generator=gen), torch.tensor([seq]), k_cache, v_cache)


def make_spec() -> ModelSpec:
    torch.manual_seed(0)
    model = PrefillDecode().eval()
    gen = torch.Generator().manual_seed(5)
    calibration = [prompt(gen, PROMPT) for _ in range(4)]
    evaluation = [prompt(gen, PROMPT), prompt(gen, SHORT)]
    decode_batches = [decode_inputs(model, ids, gen) for (ids,) in evaluation]
    decode = Method("decode", example_inputs=decode_batches[0], batches=decode_batches,
                    description="one token at its position, the KV cache in and out")
    return ModelSpec(
        name="prefill_decode", model=model, example_inputs=calibration[0], input_names=("input_ids",),
        dynamic_shapes={"input_ids": {1: torch.export.Dim("prompt", min=2, max=MAX_PROMPT)}},
        calibration_batches=calibration, eval_batches=[(b, None) for b in evaluation], methods=(decode,),
        description="forward is the prefill (a prompt of 2..16 tokens); decode runs one token with the KV cache")
