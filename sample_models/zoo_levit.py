"""LeViT (Graham et al. 2021, timm's structure), tiny: a stride-16 conv stem (Conv+BN, Hardswish),
then tokens (B, N, C). Attention's qkv/proj are ``LinearNorm`` (Linear then BatchNorm1d on the
flattened tokens, ``bn(x.flatten(0, 1)).reshape_as(x)``), with learned per-head attention biases
gathered by a precomputed index buffer (``attention_biases[:, attention_bias_idxs]``); Hardswish;
MLPs of LinearNorm; a subsampling attention between the stages (queries from every other token).
64x64 input: 4x4 tokens, then 2x2."""
from __future__ import annotations

import itertools

import torch
from torch import nn

from sample_models.zoo_common import image_spec


class ConvNorm(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.linear = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.linear(x))


class LinearNorm(nn.Module):
    def __init__(self, in_features: int, out_features: int, bn_weight_init: float = 1.0) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        self.bn = nn.BatchNorm1d(out_features)
        nn.init.constant_(self.bn.weight, bn_weight_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        return self.bn(x.flatten(0, 1)).reshape_as(x)


class NormLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(in_features)
        self.linear = nn.Linear(in_features, out_features)
        nn.init.trunc_normal_(self.linear.weight, std=0.02)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.bn(x))


def stem_b16(in_chs: int, out_chs: int) -> nn.Sequential:
    return nn.Sequential(
        ConvNorm(in_chs, out_chs // 8, 3, stride=2, padding=1), nn.Hardswish(),
        ConvNorm(out_chs // 8, out_chs // 4, 3, stride=2, padding=1), nn.Hardswish(),
        ConvNorm(out_chs // 4, out_chs // 2, 3, stride=2, padding=1), nn.Hardswish(),
        ConvNorm(out_chs // 2, out_chs, 3, stride=2, padding=1))


def _bias_index(q_resolution: int, k_resolution: int, stride: int) -> torch.Tensor:
    """(Nq, Nk) index into a (heads, k_resolution**2) table: the |dy|, |dx| offset of each query/key pair."""
    k_pos = list(itertools.product(range(k_resolution), range(k_resolution)))
    q_pos = list(itertools.product(range(0, k_resolution, stride), range(0, k_resolution, stride)))
    assert len(q_pos) == q_resolution ** 2
    return torch.tensor([[abs(q[0] - k[0]) * k_resolution + abs(q[1] - k[1]) for k in k_pos] for q in q_pos],
                        dtype=torch.long)


class Attention(nn.Module):
    def __init__(self, dim: int, key_dim: int, num_heads: int = 8, attn_ratio: float = 4.0,
                 resolution: int = 14) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = key_dim ** -0.5
        self.key_dim = key_dim
        self.val_dim = int(attn_ratio * key_dim)
        self.val_attn_dim = self.val_dim * num_heads
        self.qkv = LinearNorm(dim, self.val_attn_dim + key_dim * num_heads * 2)
        self.proj = nn.Sequential(nn.Hardswish(), LinearNorm(self.val_attn_dim, dim, bn_weight_init=0))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, resolution ** 2))
        self.register_buffer("attention_bias_idxs", _bias_index(resolution, resolution, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, self.num_heads, -1).split([self.key_dim, self.key_dim, self.val_dim], dim=3)
        q = q.permute(0, 2, 1, 3)
        k = k.permute(0, 2, 3, 1)
        v = v.permute(0, 2, 1, 3)
        attn = q @ k * self.scale + self.attention_biases[:, self.attention_bias_idxs]
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, self.val_attn_dim)
        return self.proj(x)


class Subsample(nn.Module):
    def __init__(self, stride: int, resolution: int) -> None:
        super().__init__()
        self.stride = stride
        self.resolution = resolution

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        x = x.view(B, self.resolution, self.resolution, C)[:, ::self.stride, ::self.stride]
        return x.reshape(B, -1, C)


class AttentionSubsample(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, key_dim: int, num_heads: int = 8, attn_ratio: float = 2.0,
                 stride: int = 2, resolution: int = 14) -> None:
        super().__init__()
        self.stride = stride
        self.resolution = resolution
        self.num_heads = num_heads
        self.scale = key_dim ** -0.5
        self.key_dim = key_dim
        self.val_dim = int(attn_ratio * key_dim)
        self.val_attn_dim = self.val_dim * num_heads
        self.resolution_out = (resolution - 1) // stride + 1
        self.kv = LinearNorm(in_dim, self.val_attn_dim + key_dim * num_heads)
        self.q = nn.Sequential(Subsample(stride, resolution), LinearNorm(in_dim, key_dim * num_heads))
        self.proj = nn.Sequential(nn.Hardswish(), LinearNorm(self.val_attn_dim, out_dim))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, resolution ** 2))
        self.register_buffer("attention_bias_idxs", _bias_index(self.resolution_out, resolution, stride),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        k, v = self.kv(x).view(B, N, self.num_heads, -1).split([self.key_dim, self.val_dim], dim=3)
        k = k.permute(0, 2, 3, 1)  # B, H, C, N
        v = v.permute(0, 2, 1, 3)  # B, H, N, C
        q = self.q(x).view(B, self.resolution_out ** 2, self.num_heads, self.key_dim).permute(0, 2, 1, 3)
        attn = q @ k * self.scale + self.attention_biases[:, self.attention_bias_idxs]
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, -1, self.val_attn_dim)
        return self.proj(x)


class LevitMlp(nn.Module):
    def __init__(self, in_features: int, hidden_features: int) -> None:
        super().__init__()
        self.ln1 = LinearNorm(in_features, hidden_features)
        self.act = nn.Hardswish()
        self.ln2 = LinearNorm(hidden_features, in_features, bn_weight_init=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln2(self.act(self.ln1(x)))


class Residual(nn.Module):
    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.m(x)


class Levit(nn.Module):
    def __init__(self, img_size: int = 64, num_classes: int = 10, embed_dim=(64, 96), key_dim: int = 16,
                 depth=(1, 1), num_heads=(4, 6), attn_ratio: float = 2.0, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.stem = stem_b16(3, embed_dim[0])
        resolution = img_size // 16
        blocks: list[nn.Module] = []
        for i, (dim, d, heads) in enumerate(zip(embed_dim, depth, num_heads)):
            if i > 0:  # subsample: attention whose queries come from every other token, then an MLP
                prev = embed_dim[i - 1]
                blocks.append(AttentionSubsample(prev, dim, key_dim, num_heads=prev // key_dim, attn_ratio=4.0,
                                                 stride=2, resolution=resolution))
                resolution = (resolution - 1) // 2 + 1
                blocks.append(Residual(LevitMlp(dim, dim * 2)))
            for _ in range(d):
                blocks.append(Residual(Attention(dim, key_dim, heads, attn_ratio, resolution)))
                blocks.append(Residual(LevitMlp(dim, int(dim * mlp_ratio))))
        self.blocks = nn.Sequential(*blocks)
        self.head = NormLinear(embed_dim[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x.flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, N, C)
        x = self.blocks(x)
        return self.head(x.mean(1))


def make_spec():
    torch.manual_seed(0)
    model = Levit()
    with torch.no_grad():  # trained-like: learned attention biases and non-zero residual-branch BN scales
        for m in model.modules():
            if isinstance(m, (Attention, AttentionSubsample)):
                m.attention_biases.normal_(0, 1.0)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return image_spec("zoo_levit", model, (1, 3, 64, 64), seed=60)
