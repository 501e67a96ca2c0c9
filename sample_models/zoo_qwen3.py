"""Qwen3 (Qwen team 2025) causal LM, structured like Hugging Face's ``modeling_qwen3``, which its modular file
derives from Qwen2's: the same layout (RMSNorm, rotary embeddings, grouped-query attention with ``repeat_kv``,
SwiGLU MLP, tied LM head, ``masking_utils``-style mask) without q/k/v biases, and with an RMSNorm over each head's
queries and keys (``q_norm``, ``k_norm`` on ``head_dim``) applied before the rotary embeddings:
``self.q_norm(self.q_proj(hidden_states).view(hidden_shape)).transpose(1, 2)``. Config shaped like Qwen3-0.6B
(GQA 16:8, head_dim 128, rope theta 1e6) cut to 2 layers of width 128, 8 query heads and 2 KV heads of dim 16,
8192-token vocabulary. Input: ``input_ids`` (1, 32) int64; output: logits (1, 32, 8192)."""
from __future__ import annotations

import torch
from torch import nn

from sample_models import zoo_qwen2 as qwen2
from sample_models.zoo_common import sequence_spec, token_batches, trained_like_weights

Qwen3RMSNorm = qwen2.Qwen2RMSNorm


class Qwen3Attention(qwen2.Qwen2Attention):
    def __init__(self, config: qwen2.Qwen2Config, layer_idx: int) -> None:
        super().__init__(config, layer_idx)
        for proj in (self.q_proj, self.k_proj, self.v_proj):  # attention_bias=False in Qwen3's config
            proj.bias = None
        self.q_norm = Qwen3RMSNorm(self.head_dim, eps=config.rms_norm_eps)  # unlike olmo, only on the head dim!
        self.k_norm = Qwen3RMSNorm(self.head_dim, eps=config.rms_norm_eps)  # thus post q_norm does not need reshape

    def forward(self, hidden_states: torch.Tensor, position_embeddings: tuple[torch.Tensor, torch.Tensor],
                attention_mask: torch.Tensor | None) -> torch.Tensor:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)

        query_states = self.q_norm(self.q_proj(hidden_states).view(hidden_shape)).transpose(1, 2)
        key_states = self.k_norm(self.k_proj(hidden_states).view(hidden_shape)).transpose(1, 2)
        value_states = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)

        cos, sin = position_embeddings
        query_states, key_states = qwen2.apply_rotary_pos_emb(query_states, key_states, cos, sin)

        key_states = qwen2.repeat_kv(key_states, self.num_key_value_groups)
        value_states = qwen2.repeat_kv(value_states, self.num_key_value_groups)
        attn_weights = torch.matmul(query_states, key_states.transpose(2, 3)) * self.scaling
        if attention_mask is not None:
            attn_weights = attn_weights + attention_mask[:, :, :, : key_states.shape[-2]]
        attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query_states.dtype)
        attn_output = torch.matmul(attn_weights, value_states)
        attn_output = attn_output.transpose(1, 2).contiguous()
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        return self.o_proj(attn_output)


class Qwen3ForCausalLM(qwen2.Qwen2ForCausalLM):
    def __init__(self, config: qwen2.Qwen2Config) -> None:
        super().__init__(config)
        for i, layer in enumerate(self.model.layers):
            layer.self_attn = Qwen3Attention(config, i)
        self.apply(self._init_weights)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight


QWEN3_SMALL = qwen2.Qwen2Config(vocab_size=8192, hidden_size=128, intermediate_size=352, num_hidden_layers=2,
                                num_attention_heads=8, num_key_value_heads=2)


def make_spec():
    torch.manual_seed(0)
    model = trained_like_weights(Qwen3ForCausalLM(QWEN3_SMALL), seed=111).eval()
    batches = token_batches(8, 1, 32, QWEN3_SMALL.vocab_size, seed=113, with_mask=False)
    return sequence_spec("zoo_qwen3", model, batches, ("input_ids",))
