"""The zoo's sequence models (Hugging Face structure): each builds, is deterministic, runs eagerly on realistic
inputs (int64 token ids with padded masks, log-mel features, raw audio), keeps evaluation data apart from
calibration data, and has the structure it claims."""
from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

from sample_models import SAMPLES, load_sample
from quantviz.model_spec import ModelSpec

INPUTS = {  # name -> (input_names, shapes, dtypes, output shape)
    "zoo_bert": (("input_ids", "attention_mask"), [(2, 32), (2, 32)], [torch.long, torch.long], (2, 2)),
    "zoo_distilbert": (("input_ids", "attention_mask"), [(2, 32), (2, 32)], [torch.long, torch.long], (2, 2)),
    "zoo_gpt2": (("input_ids",), [(1, 32)], [torch.long], (1, 32, 8192)),
    "zoo_llama": (("input_ids",), [(1, 32)], [torch.long], (1, 32, 8192)),
    "zoo_llama_deep": (("input_ids",), [(1, 32)], [torch.long], (1, 32, 8192)),
    "zoo_qwen2": (("input_ids",), [(1, 32)], [torch.long], (1, 32, 8192)),
    "zoo_qwen3": (("input_ids",), [(1, 32)], [torch.long], (1, 32, 8192)),
    "zoo_whisper": (("input_features",), [(1, 80, 200)], [torch.float32], (1, 100, 128)),
    "zoo_wav2vec2": (("input_values",), [(1, 16000)], [torch.float32], (1, 49, 32)),
}


@pytest.fixture(scope="module")
def specs() -> dict[str, ModelSpec]:
    return {name: load_sample(name) for name in INPUTS}


def count(model: nn.Module, kind: type | tuple[type, ...]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_builds_and_runs_on_its_data(specs, name):
    spec = specs[name]
    names, shapes, dtypes, out_shape = INPUTS[name]
    assert spec.name == name and spec.description == SAMPLES[name] and spec.input_names == names
    assert not spec.model.training
    assert len(spec.calibration_batches) == 4 and len(spec.eval_batches) >= 2
    calibration = {tuple(t.flatten()[:64].tolist()) for b in spec.calibration_batches for t in b[:1]}
    assert not any(tuple(b[0].flatten()[:64].tolist()) in calibration for b, _ in spec.eval_batches)  # eval != calib
    with torch.no_grad():
        for batch in [spec.example_inputs, *spec.calibration_batches, *(b for b, _ in spec.eval_batches)]:
            assert [tuple(t.shape) for t in batch] == shapes and [t.dtype for t in batch] == dtypes
            out = spec.model(*batch)
            assert out.shape == out_shape and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["zoo_bert", "zoo_distilbert"])
def test_text_encoders_get_padded_masks(specs, name):
    spec = specs[name]
    vocab = spec.model.config.vocab_size
    for ids, mask in spec.calibration_batches + [b for b, _ in spec.eval_batches]:
        assert int(ids.max()) < vocab and int(ids.min()) >= 0
        assert mask[0].all() and not mask[1].all()  # the second row is padded
        assert (ids[mask == 0] == 0).all()  # [PAD]
    # the mask matters: changing a padded token does not change the output, changing a real one does
    ids, mask = spec.example_inputs
    pad = int((mask[1] == 0).nonzero()[0])
    with torch.no_grad():
        ref = spec.model(ids, mask)
        changed = ids.clone()
        changed[1, pad] = 999
        assert torch.allclose(spec.model(changed, mask)[1], ref[1], atol=1e-5)
        changed[1, 1] = 999
        assert not torch.allclose(spec.model(changed, mask)[1], ref[1], atol=1e-5)


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_deterministic(specs, name):
    again = importlib.import_module(f"sample_models.{name}").make_spec()
    first = specs[name]
    assert all(torch.equal(a, b) for a, b in zip(first.calibration_batches[0], again.calibration_batches[0]))
    with torch.no_grad():
        assert torch.equal(first.model(*first.example_inputs), again.model(*again.example_inputs))


@pytest.mark.parametrize("name", ["zoo_gpt2", "zoo_llama", "zoo_llama_deep", "zoo_qwen2", "zoo_qwen3"])
def test_decoders_are_causal_and_tied(specs, name):
    spec = specs[name]
    model = spec.model
    embed = model.transformer.wte if name == "zoo_gpt2" else model.model.embed_tokens
    assert model.lm_head.weight is embed.weight
    (ids,) = spec.example_inputs
    with torch.no_grad():
        ref = model(ids)
        changed = ids.clone()
        changed[0, -1] = (int(ids[0, -1]) + 1) % model.config.vocab_size
        out = model(changed)
    assert torch.allclose(out[:, :-1], ref[:, :-1], atol=1e-5) and not torch.allclose(out[:, -1], ref[:, -1])


def test_llama_family_structure(specs):
    llama = importlib.import_module("sample_models.zoo_llama")
    qwen2 = importlib.import_module("sample_models.zoo_qwen2")
    for name, mod, rms, heads, kv in [("zoo_llama", llama, llama.LlamaRMSNorm, 4, 2),
                                      ("zoo_llama_deep", llama, llama.LlamaRMSNorm, 4, 2),
                                      ("zoo_qwen2", qwen2, qwen2.Qwen2RMSNorm, 8, 2)]:
        model = specs[name].model
        assert model.config.num_attention_heads == heads and model.config.num_key_value_heads == kv
        attn = model.model.layers[0].self_attn
        assert attn.num_key_value_groups == heads // kv
        assert attn.k_proj.out_features == kv * attn.head_dim < attn.q_proj.out_features
        assert count(model, rms) == 2 * model.config.num_hidden_layers + 1 and count(model, nn.LayerNorm) == 0
    assert len(specs["zoo_llama_deep"].model.model.layers) == 16
    assert count(specs["zoo_llama_deep"].model, nn.Linear) == 113
    assert specs["zoo_qwen2"].model.model.layers[0].self_attn.q_proj.bias is not None
    assert specs["zoo_llama"].model.model.layers[0].self_attn.q_proj.bias is None
    assert specs["zoo_qwen2"].model.config.rope_theta == 1e6 != specs["zoo_llama"].model.config.rope_theta


def test_qwen3_normalises_each_heads_queries_and_keys(specs):
    qwen3 = importlib.import_module("sample_models.zoo_qwen3")
    model = specs["zoo_qwen3"].model
    attn = model.model.layers[0].self_attn
    assert isinstance(attn, qwen3.Qwen3Attention) and attn.q_proj.bias is None and attn.v_proj.bias is None
    assert attn.q_norm.weight.shape == attn.k_norm.weight.shape == (attn.head_dim,)
    assert count(model, qwen3.Qwen3RMSNorm) == 4 * model.config.num_hidden_layers + 1  # q/k norms beside the two
    (ids,) = specs["zoo_qwen3"].example_inputs
    with torch.no_grad():  # the q/k norms are in the computation: scaling k_norm's weight changes the logits
        ref = model(ids)
        attn.k_norm.weight.mul_(3.0)
        changed = model(ids)
        attn.k_norm.weight.div_(3.0)
    assert not torch.allclose(ref, changed, atol=1e-4)


def test_gpt2_uses_transposed_conv1d(specs):
    mod = importlib.import_module("sample_models.zoo_gpt2")
    model = specs["zoo_gpt2"].model
    assert count(model, mod.Conv1D) == 4 * model.config.n_layer and count(model, nn.Linear) == 1  # only lm_head


def test_audio_front_ends(specs):
    whisper = specs["zoo_whisper"].model
    assert whisper.conv2.stride == (2,) and whisper.embed_positions.num_embeddings == 100
    (mel,) = specs["zoo_whisper"].example_inputs
    assert -1.5 < float(mel.min()) and float(mel.max()) < 2.5  # Whisper's (log10 + 4) / 4 range
    w2v = specs["zoo_wav2vec2"].model
    assert count(w2v, nn.Conv1d) == 8 and count(w2v, nn.GroupNorm) == 1
    pos = w2v.wav2vec2.encoder.pos_conv_embed
    assert pos.conv.groups == 16 and nn.utils.parametrize.is_parametrized(pos.conv, "weight")
    assert pos.padding.num_pad_remove == 1
    (audio,) = specs["zoo_wav2vec2"].example_inputs
    assert abs(float(audio.mean())) < 1e-3 and abs(float(audio.std()) - 1) < 1e-3
