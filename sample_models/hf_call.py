"""The zoo's Llama- and Qwen3-style decoders called the way Hugging Face ``generate`` calls a causal LM after the
prompt: the new token ids positionally, and as keyword arguments the 2-D padding ``attention_mask`` over the cached
and new positions, the ``position_ids`` of the new tokens and the KV cache of the earlier positions
(``past_key_values``, a dict of per-layer key and value tensors, shaped (batch, kv_heads, past, head_dim)); the
forward returns a dict, as a ``ModelOutput`` is one, with the logits and the updated cache::

    out = model(input_ids, attention_mask=mask, position_ids=pos,
                past_key_values={"key": (k0, k1), "value": (v0, v1)})
    out["logits"]                 # (1, seq, vocab)
    out["past_key_values"]        # {"key": (k0', k1'), "value": ...}, each (1, kv_heads, PAST + seq, head_dim)

The forward is Hugging Face's legacy-cache path (``cache_position = arange(past, past + seq)``, keys and values
concatenated after the cache, the 4-D mask from the causal rule and the 2-D padding mask, ``torch.where(allowed, 0,
finfo.min)``), written over the zoo modules' own layers and weights (``zoo_llama``, ``zoo_qwen3``): the same
projections, RMSNorms (Qwen3's per-head ``q_norm``/``k_norm`` too), rotary embedding and MLP.

Not a registered sample: a factory file (``sample_models/hf_call.py:make_llama``, ``...:make_qwen3``), as a user's
would be. The sequence length is dynamic (``torch.export.Dim.DYNAMIC``; export finds the mask's length to be
``seq + PAST``); the cache length is fixed at PAST. Calibration at SEQ tokens, evaluation at SEQ and SHORT.
"""
from __future__ import annotations

import torch
from torch import nn

from quantviz.model_spec import Batch, ModelSpec
from sample_models import zoo_llama, zoo_qwen3
from sample_models.zoo_common import trained_like_weights

PAST, SEQ, SHORT = 8, 16, 5


class HFCallCausalLM(nn.Module):
    """A zoo ``*ForCausalLM`` (its ``model.embed_tokens``, ``model.layers``, ``model.norm``, ``model.rotary_emb``,
    ``lm_head``) with Hugging Face's calling convention and KV cache."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def _attention(self, attn: nn.Module, hidden: torch.Tensor, cos_sin: tuple[torch.Tensor, torch.Tensor],
                   mask: torch.Tensor, past_key: torch.Tensor | None, past_value: torch.Tensor | None):
        input_shape = hidden.shape[:-1]
        hidden_shape = (*input_shape, -1, attn.head_dim)
        q = attn.q_proj(hidden).view(hidden_shape)
        k = attn.k_proj(hidden).view(hidden_shape)
        if hasattr(attn, "q_norm"):  # Qwen3: RMSNorm over each head's queries and keys
            q, k = attn.q_norm(q), attn.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        v = attn.v_proj(hidden).view(hidden_shape).transpose(1, 2)
        cos, sin = cos_sin
        q, k = zoo_llama.apply_rotary_pos_emb(q, k, cos, sin)
        if past_key is not None:  # DynamicCache.update: the new keys and values after the cached ones
            k = torch.cat([past_key, k], dim=-2)
            v = torch.cat([past_value, v], dim=-2)
        key_states = zoo_llama.repeat_kv(k, attn.num_key_value_groups)
        value_states = zoo_llama.repeat_kv(v, attn.num_key_value_groups)
        weights = torch.matmul(q, key_states.transpose(2, 3)) * attn.scaling + mask
        weights = nn.functional.softmax(weights, dim=-1, dtype=torch.float32).to(q.dtype)
        out = torch.matmul(weights, value_states).transpose(1, 2).contiguous().reshape(*input_shape, -1)
        return attn.o_proj(out), k, v

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None,
                past_key_values: dict[str, tuple[torch.Tensor, ...]] | None = None) -> dict:
        base = self.lm.model
        hidden = base.embed_tokens(input_ids)
        batch, seq = input_ids.shape
        past = past_key_values["key"][0].shape[-2] if past_key_values is not None else 0
        cache_position = torch.arange(past, past + seq, device=hidden.device)
        if position_ids is None:
            position_ids = cache_position.unsqueeze(0)
        kv_length = past + seq
        allowed = torch.arange(kv_length, device=hidden.device)[None, :] <= cache_position[:, None]  # causal
        allowed = allowed[None, None].expand(batch, 1, seq, kv_length)
        if attention_mask is not None:  # padding: (batch, past + seq), 0 where a position is padding
            allowed = allowed & attention_mask[:, None, None, :].bool()
        mask = torch.where(allowed, torch.tensor(0.0, dtype=hidden.dtype), torch.finfo(hidden.dtype).min)
        cos_sin = base.rotary_emb(hidden, position_ids)
        keys, values = [], []
        for i, layer in enumerate(base.layers):
            residual = hidden
            pk = past_key_values["key"][i] if past_key_values is not None else None
            pv = past_key_values["value"][i] if past_key_values is not None else None
            attn_out, k, v = self._attention(layer.self_attn, layer.input_layernorm(hidden), cos_sin, mask, pk, pv)
            hidden = residual + attn_out
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
            keys.append(k)
            values.append(v)
        logits = self.lm.lm_head(base.norm(hidden))
        return {"logits": logits, "past_key_values": {"key": tuple(keys), "value": tuple(values)}}


def _batch(gen: torch.Generator, lm: nn.Module, seq: int, pad: int) -> Batch:
    """New tokens at positions PAST..PAST+seq-1 after a PAST-token cache whose first ``pad`` positions are left
    padding (attention_mask 0)."""
    cfg = lm.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    ids = torch.randint(1, cfg.vocab_size, (1, seq), generator=gen)
    mask = torch.ones(1, PAST + seq, dtype=torch.long)
    mask[:, :pad] = 0
    shape = (1, cfg.num_key_value_heads, PAST, head_dim)
    cache = {"key": tuple(torch.randn(shape, generator=gen) for _ in range(cfg.num_hidden_layers)),
             "value": tuple(torch.randn(shape, generator=gen) for _ in range(cfg.num_hidden_layers))}
    return Batch((ids,), {"attention_mask": mask, "position_ids": torch.arange(PAST, PAST + seq)[None],
                          "past_key_values": cache})


def build(name: str, lm: nn.Module, *, seed: int) -> ModelSpec:
    model = HFCallCausalLM(lm).eval()
    gen = torch.Generator().manual_seed(seed)
    calibration = [_batch(gen, lm, SEQ, pad=i % 3) for i in range(4)]
    evaluation = [_batch(gen, lm, SEQ, 0), _batch(gen, lm, SHORT, 2)]
    # Dim.DYNAMIC, not a named Dim("seq", min=2, max=MAX_SEQ): torch.export (2.13) refuses any named Dim here (with
    # or without bounds), its guard min(256 + 32*seq, 512 + 64*seq) == 256 + 32*seq from the contiguity check of
    # repeat_kv's reshape after the cache concat being "not satisfied for all values"; DYNAMIC lets export keep it
    seq = torch.export.Dim.DYNAMIC
    layers = lm.config.num_hidden_layers
    example = calibration[0]
    return ModelSpec(
        name=name, model=model, example_inputs=example.args, example_kwargs=example.kwargs,
        input_names=("input_ids",),
        dynamic_shapes={"input_ids": {1: seq}, "attention_mask": {1: seq}, "position_ids": {1: seq},
                        "past_key_values": {"key": (None,) * layers, "value": (None,) * layers}},
        calibration_batches=calibration, eval_batches=[(b, None) for b in evaluation],
        description=f"{name}: called as Hugging Face calls a causal LM with a KV cache (keyword attention_mask, "
                    "position_ids, past_key_values dict; dynamic sequence length)")


def make_llama() -> ModelSpec:
    torch.manual_seed(0)
    lm = trained_like_weights(zoo_llama.LlamaForCausalLM(zoo_llama.LLAMA_SMALL), seed=91).eval()
    return build("hf_call_llama", lm, seed=92)


def make_qwen3() -> ModelSpec:
    torch.manual_seed(0)
    lm = trained_like_weights(zoo_qwen3.Qwen3ForCausalLM(zoo_qwen3.QWEN3_SMALL), seed=111).eval()
    return build("hf_call_qwen3", lm, seed=112)
