"""The zoo samples: each builds, is deterministic, runs eagerly, and has the structure it claims."""
from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

from sample_models import SAMPLES, ZOO, load_sample
from quantviz.model_spec import ModelSpec

EXPECTED = {"zoo_tf_mobilenet", "zoo_inverted_residual", "zoo_se_silu", "zoo_convnext", "zoo_vit", "zoo_levit",
            "zoo_hybrid_unfold", "zoo_window_attention", "zoo_poolformer"}
SEQUENCE = {"zoo_bert", "zoo_distilbert", "zoo_gpt2", "zoo_llama", "zoo_llama_deep", "zoo_qwen2", "zoo_qwen3",
            "zoo_whisper", "zoo_wav2vec2"}  # tests/test_zoo_sequence_models.py


def count(model: nn.Module, kind: type | tuple[type, ...]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


@pytest.fixture(scope="module")
def specs() -> dict[str, ModelSpec]:
    return {name: load_sample(name) for name in sorted(EXPECTED)}


def test_zoo_is_registered():
    assert set(ZOO) == EXPECTED | SEQUENCE
    assert all(name in SAMPLES and SAMPLES[name] for name in ZOO)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builds_and_runs_eagerly(specs, name):
    spec = specs[name]
    assert spec.name == name and spec.description == SAMPLES[name]
    assert not spec.model.training
    assert len(spec.calibration_batches) >= 2 and len(spec.eval_batches) >= 1
    shape = spec.example_inputs[0].shape
    assert shape[0] == 1
    with torch.no_grad():
        for batch in [spec.example_inputs, *spec.calibration_batches, *(b for b, _ in spec.eval_batches)]:
            assert batch[0].shape == shape
            out = spec.model(*batch)
            assert out.shape == (1, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_deterministic(specs, name):
    again = importlib.import_module(f"sample_models.{name}").make_spec()
    first = specs[name]
    assert all(torch.equal(a, b) for a, b in zip(first.calibration_batches[0], again.calibration_batches[0]))
    with torch.no_grad():
        assert torch.equal(first.model(*first.example_inputs), again.model(*again.example_inputs))
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()))


def test_batchnorm_statistics_reestimated(specs):
    for name, spec in specs.items():
        for m in spec.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                assert not torch.equal(m.running_var, torch.ones_like(m.running_var)), name
                assert int(m.num_batches_tracked) > 0, name


def test_tf_mobilenet_pads_every_conv_with_the_module_level_helper(specs):
    mod = importlib.import_module("sample_models.zoo_tf_mobilenet")
    model = specs["zoo_tf_mobilenet"].model
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) >= 12 and all(isinstance(m, mod.Conv2dSame) for m in convs)
    assert all(m.padding == (0, 0) for m in convs)
    assert callable(mod.pad_same)
    # TF "same" on an even input with stride 2 pads 0 before and 1 after
    assert mod.pad_same(torch.zeros(1, 1, 4, 4), 3, 2).shape[-2:] == (5, 5)
    with pytest.raises(Exception):  # int(x.shape[-2]) on an fx Proxy: the untraceable-helper case
        torch.fx.symbolic_trace(model)


def test_inverted_residual_is_deep(specs):
    mod = importlib.import_module("sample_models.zoo_inverted_residual")
    model = specs["zoo_inverted_residual"].model
    assert count(model, nn.Conv2d) >= 28
    assert count(model, nn.ReLU6) >= 20
    assert any(m.use_res_connect for m in model.modules() if isinstance(m, mod.InvertedResidual))


def test_se_silu_has_squeeze_excite(specs):
    mod = importlib.import_module("sample_models.zoo_se_silu")
    model = specs["zoo_se_silu"].model
    assert count(model, mod.SqueezeExcite) >= 5 and count(model, nn.SiLU) >= 10 and count(model, nn.Sigmoid) >= 5


def test_convnext_blocks(specs):
    mod = importlib.import_module("sample_models.zoo_convnext")
    model = specs["zoo_convnext"].model
    blocks = [m for m in model.modules() if isinstance(m, mod.Block)]
    assert len(blocks) >= 4 and all(b.dwconv.kernel_size == (7, 7) and b.gamma is not None for b in blocks)
    norms = [m for m in model.modules() if isinstance(m, mod.LayerNorm)]
    assert sum(n.data_format == "channels_first" for n in norms) == 4


def test_vit_depth_and_tokens(specs):
    model = specs["zoo_vit"].model
    assert 4 <= len(model.blocks) <= 6
    assert model.pos_embed.shape[1] == model.patch_embed.num_patches + 1


def test_levit_linear_norm_and_bias_index(specs):
    mod = importlib.import_module("sample_models.zoo_levit")
    model = specs["zoo_levit"].model
    assert count(model, mod.LinearNorm) >= 8 and count(model, nn.BatchNorm1d) >= 8
    attns = [m for m in model.modules() if isinstance(m, (mod.Attention, mod.AttentionSubsample))]
    assert any(isinstance(m, mod.AttentionSubsample) for m in attns)
    for m in attns:
        assert m.attention_bias_idxs.dtype == torch.long
        assert int(m.attention_bias_idxs.max()) < m.attention_biases.shape[1]


def test_hybrid_unfold_has_a_transformer_over_patches(specs):
    mod = importlib.import_module("sample_models.zoo_hybrid_unfold")
    model = specs["zoo_hybrid_unfold"].model
    assert count(model, mod.MobileVitBlock) >= 1 and count(model, mod.TransformerBlock) >= 2
    assert count(model, nn.Conv2d) >= 10


def test_window_attention_index_buffer_and_shift(specs):
    mod = importlib.import_module("sample_models.zoo_window_attention")
    model = specs["zoo_window_attention"].model
    attns = [m for m in model.modules() if isinstance(m, mod.WindowAttention)]
    buffers = dict(model.named_buffers())
    assert attns and all(m.relative_position_index.dtype == torch.long for m in attns)
    assert any(n.endswith("relative_position_index") for n in buffers)
    assert any(b.shift_size > 0 and b.attn_mask is not None
               for b in model.modules() if isinstance(b, mod.SwinTransformerBlock))
    x = torch.randn(2, 8, 8, 3)
    assert torch.equal(mod.window_reverse(mod.window_partition(x, 4), 4, 8, 8), x)


def test_poolformer_blocks(specs):
    mod = importlib.import_module("sample_models.zoo_poolformer")
    model = specs["zoo_poolformer"].model
    assert count(model, mod.PoolFormerBlock) >= 4
    norms = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and all(m.num_groups == 1 for m in norms)
    pools = [m.pool for m in model.modules() if isinstance(m, mod.Pooling)]
    assert all(p.kernel_size == 3 and p.stride == 1 and p.padding == 1 for p in pools)
