"""The ``zoo_llama`` architecture at depth 16 (Llama 3.2 1B's layer count) and width 64: 4 query heads, 2 KV
heads of dim 16, SwiGLU 192, rotary embeddings, arange-built causal mask, tied LM head, 8192-token vocabulary.
A scale target: 16 blocks, 113 Linears. Input: ``input_ids`` (1, 32) int64; output: logits (1, 32, 8192)."""
from __future__ import annotations

from sample_models.zoo_llama import LLAMA_DEEP, build_spec


def make_spec():
    return build_spec("zoo_llama_deep", LLAMA_DEEP, seed=93)
