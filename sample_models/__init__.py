"""Small models shipped with quantviz, each with its data. No downloads.

Each sample is a module here with ``make_spec() -> ModelSpec``, registered in ``SAMPLES`` with its
one-line description (``load_sample`` copies it to ``ModelSpec.description``).

``ZOO`` names the zoo: architectures written the way third-party model libraries write them
(timm-style: TF "same" padding helpers, squeeze-excite, ConvNeXt, ViT, LeViT, MobileViT, Swin,
PoolFormer), and sequence models the way Hugging Face transformers writes them (BERT, DistilBERT, GPT-2, Llama,
Qwen2, Whisper's encoder, wav2vec2): random seeded weights with re-estimated batch-norm statistics, synthetic
inputs (images, token ids with padding masks, log-mel spectrograms, raw audio).
``zoo_common`` is their shared glue, not a sample.
"""
from __future__ import annotations

import importlib

from quantviz.model_spec import ModelSpec

SAMPLES: dict[str, str] = {
    "conv_add": "conv2d + add + relu: the seed flow's QuantizedConvAdd example",
    "digits_cnn": "small CNN trained on scikit-learn's digits; real float vs int8 accuracy",
    "mlp_dynamic": "three linear layers, for dynamic quantization (choose_qparams -> q -> dq)",
    "mobilenet_v2": "MobileNetV2-style net: inverted residuals, depthwise convs, relu6, residual adds",
    "tiny_transformer": "one encoder block: attention, layernorm, softmax, gelu (several ops stay unfused)",
    "not_traceable": "a submodule with Python control flow on its input: trace fails until it is skipped",
    "embedding": "embedding + mean + linear text classifier (embedding quantization patterns)",
    "text_lm": "character-level GPT-style LM (2 blocks, width 64) trained on pydoc_data.topics; perplexity, "
               "next-token agreement and generation on held-out topics",
    "kwargs_decoder": "decoder called as model(input_ids, attention_mask=..., cache={'k': ..., 'v': ...}) with a "
                      "dynamic sequence length (torch.export Dim, 2..16): keyword and nested inputs, evaluated at "
                      "two lengths",
    "prefill_decode": "decoder shipped as two methods in one .pte: forward is the prefill (a prompt of 2..16 tokens), "
                      "decode runs one token at its position with the KV cache passed in and returned "
                      "(ModelSpec.methods; --flow torchao)",
    # the zoo
    "zoo_tf_mobilenet": "MobileNetV1 ported from TF: every conv pads with a module-level 'same' helper "
                        "(int(x.shape) breaks fx tracing; torch.export is fine)",
    "zoo_inverted_residual": "MobileNetV2 (width 0.35, 31 convs): inverted residuals, expansion 6, relu6, "
                             "residual adds",
    "zoo_se_silu": "EfficientNet-style MBConv: depthwise 3x3/5x5, squeeze-excite (avg pool, 1x1 convs, "
                   "sigmoid gate), SiLU",
    "zoo_convnext": "ConvNeXt: 7x7 depthwise, NHWC LayerNorm + Linear MLP with GELU, layer scale, "
                    "channels-first LayerNorm downsampling",
    "zoo_vit": "ViT: patch-embed conv, class token, position embedding, 4 pre-norm attention blocks "
               "(matmul + softmax), GELU MLP",
    "zoo_levit": "LeViT: conv stem, Linear+BatchNorm1d on tokens, attention biases gathered by an index "
                 "buffer, hardswish, subsample attention",
    "zoo_hybrid_unfold": "MobileViT: convs, unfold to patches by reshape/transpose, transformer "
                         "(scaled_dot_product_attention), fold back, conv fusion",
    "zoo_window_attention": "Swin: window partition/reverse, relative position bias via a long index "
                            "buffer, shifted windows with mask, patch merging",
    "zoo_poolformer": "PoolFormer/MetaFormer: GroupNorm(1, C), avgpool(x) - x token mixer, 1x1-conv GELU MLP, "
                      "layer scale",
    # the zoo's sequence models (Hugging Face transformers' structure)
    "zoo_bert": "BERT-Tiny text classifier: word+position+token-type embeddings, (input_ids, attention_mask) with "
                "padding turned into an additive (1 - mask) * finfo.min mask, GELU MLP, tanh pooler",
    "zoo_distilbert": "DistilBERT classifier: word + sinusoidal position embeddings, (input_ids, attention_mask) "
                      "applied with masked_fill(mask == 0, finfo.min), post-norm GELU blocks",
    "zoo_gpt2": "GPT-2 LM: learned positions from arange + past_seen_tokens, Conv1D (addmm) projections, tril-buffer "
                "causal mask via torch.where, tanh GELU, LM head tied to the token embedding",
    "zoo_llama": "Llama LM: RMSNorm, rotary embeddings, grouped-query attention (4 query / 2 KV heads, repeat_kv), "
                 "SwiGLU, causal mask built from arange, tied LM head",
    "zoo_llama_deep": "zoo_llama at 16 layers (width 64): the scale target, 113 Linears",
    "zoo_qwen2": "Qwen2 LM: the Llama layout with q/k/v biases, rope theta 1e6, GQA 8:2, masking_utils-style "
                 "arange index mask + torch.where, tied LM head",
    "zoo_qwen3": "Qwen3 LM: Qwen2's layout without q/k/v biases, with an RMSNorm on each head's queries and keys "
                 "(q_norm, k_norm) before the rotary embeddings",
    "zoo_whisper": "Whisper speech encoder: log-mel (1, 80, 200) -> conv1d + GELU, stride-2 conv1d + GELU, "
                   "sinusoidal positions, pre-norm attention blocks",
    "zoo_wav2vec2": "wav2vec2 CTC: raw audio (1, 16000) -> 7 conv1d feature encoder (GroupNorm first, GELU), feature "
                    "projection, weight-normed grouped conv positional embedding, post-norm encoder",
    # real sizes, for timing (bench/latency.py); the tests run the small ones
    "real_mobilenet_v2": "MobileNetV2 at full size (torchvision's: width 1.0, 1000 classes) on 224x224: 52 convs",
    "real_regnetx_200mf": "RegNetX-200MF (torchvision's regnet_x_200mf) on 224x224: group convs, projection "
                          "shortcuts",
    "real_bert_base": "BERT-base width (768 hidden, 12 heads, 3072 MLP), 2 layers, 128 tokens: zoo_bert at size",
}

ZOO: tuple[str, ...] = tuple(name for name in SAMPLES if name.startswith("zoo_"))
# the zoo's sequence models (token ids, log-mel features, raw audio) and its vision models
SEQUENCE_ZOO: tuple[str, ...] = ("zoo_bert", "zoo_distilbert", "zoo_gpt2", "zoo_llama", "zoo_llama_deep", "zoo_qwen2",
                                 "zoo_qwen3", "zoo_whisper", "zoo_wav2vec2")
VISION_ZOO: tuple[str, ...] = tuple(name for name in ZOO if name not in SEQUENCE_ZOO)
# trained language models: perplexity and generation on held-out text (tests/test_text_lm.py runs them end to end)
LANGUAGE_MODELS: tuple[str, ...] = ("text_lm",)
# keyword/nested inputs and dynamic dimensions: the flows built on torch.export take them, fx and the recipe flow
# refuse them at their first stage (tests/test_keyword_inputs.py)
STRUCTURED: tuple[str, ...] = ("kwargs_decoder", "prefill_decode")  # prefill_decode: tests/test_methods.py
# real-size models: minutes through a flow, so the tests leave them to the benchmarks
REAL_SIZE: tuple[str, ...] = tuple(name for name in SAMPLES if name.startswith("real_"))


def load_sample(name: str) -> ModelSpec:
    """Build the sample model ``name``, e.g. ``load_sample("digits_cnn")``."""
    if name not in SAMPLES:
        raise KeyError(name)
    module = importlib.import_module(f"sample_models.{name}")
    spec: ModelSpec = module.make_spec()
    spec.description = SAMPLES[name]
    return spec
