"""MobileViT (Mehta & Rastegari 2021, timm's structure), extra-extra-small: a conv stem and
MobileNetV2 inverted residuals, then MobileViT blocks: 3x3 conv + 1x1 conv (local representation),
unfold the feature map into 2x2 patches with reshape/transpose, a small pre-norm transformer
(qkv Linear, ``F.scaled_dot_product_attention``, GELU MLP, LayerNorm) over the patches, fold back
with reshape/transpose, 1x1 projection, concatenate with the input and fuse with a 3x3 conv.
64x64 input."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from sample_models.zoo_common import image_spec


class ConvNormAct(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class InvertedResidual(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, exp_ratio: float = 2.0) -> None:
        super().__init__()
        mid = int(in_chs * exp_ratio)
        self.has_skip = stride == 1 and in_chs == out_chs
        self.conv_pw = ConvNormAct(in_chs, mid, 1)
        self.conv_dw = ConvNormAct(mid, mid, 3, stride, groups=mid)
        self.conv_pwl = ConvNormAct(mid, out_chs, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_pwl(self.conv_dw(self.conv_pw(x)))
        return x + shortcut if self.has_skip else x


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int = 4, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MobileVitBlock(nn.Module):
    def __init__(self, in_chs: int, transformer_dim: int, transformer_depth: int = 2, num_heads: int = 4,
                 patch_size: int = 2, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.conv_kxk = ConvNormAct(in_chs, in_chs, 3)
        self.conv_1x1 = nn.Conv2d(in_chs, transformer_dim, 1, bias=False)
        self.transformer = nn.Sequential(
            *[TransformerBlock(transformer_dim, num_heads, mlp_ratio) for _ in range(transformer_depth)])
        self.norm = nn.LayerNorm(transformer_dim)
        self.conv_proj = ConvNormAct(transformer_dim, in_chs, 1)
        self.conv_fusion = ConvNormAct(in_chs * 2, in_chs, 3)
        self.patch_size = (patch_size, patch_size)
        self.patch_area = patch_size * patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_1x1(self.conv_kxk(x))  # local representation

        # unfold (feature map -> patches): (B, C, H, W) -> (B * P, N, C)
        patch_h, patch_w = self.patch_size
        B, C, H, W = x.shape
        new_h, new_w = math.ceil(H / patch_h) * patch_h, math.ceil(W / patch_w) * patch_w
        num_patch_h, num_patch_w = new_h // patch_h, new_w // patch_w
        num_patches = num_patch_h * num_patch_w
        interpolate = False
        if new_h != H or new_w != W:
            x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
            interpolate = True
        x = x.reshape(B * C * num_patch_h, patch_h, num_patch_w, patch_w).transpose(1, 2)
        x = x.reshape(B, C, num_patches, self.patch_area).transpose(1, 3).reshape(B * self.patch_area, num_patches, -1)

        x = self.transformer(x)  # global representation
        x = self.norm(x)

        # fold (patches -> feature map): (B * P, N, C) -> (B, C, H, W)
        x = x.contiguous().view(B, self.patch_area, num_patches, -1)
        x = x.transpose(1, 3).reshape(B * C * num_patch_h, num_patch_w, patch_h, patch_w)
        x = x.transpose(1, 2).reshape(B, C, num_patch_h * patch_h, num_patch_w * patch_w)
        if interpolate:
            x = F.interpolate(x, size=(H, W), mode="bilinear", align_corners=False)

        x = self.conv_proj(x)
        return self.conv_fusion(torch.cat((shortcut, x), dim=1))


class MobileVit(nn.Module):
    def __init__(self, num_classes: int = 10, chs=(16, 16, 24, 32, 48), transformer_dims=(48, 64),
                 num_features: int = 128) -> None:
        super().__init__()
        self.stem = ConvNormAct(3, chs[0], 3, stride=2)  # 32x32
        self.stages = nn.Sequential(
            InvertedResidual(chs[0], chs[1], 1),
            nn.Sequential(InvertedResidual(chs[1], chs[2], 2), InvertedResidual(chs[2], chs[2], 1)),  # 16x16
            nn.Sequential(InvertedResidual(chs[2], chs[3], 2),  # 8x8
                          MobileVitBlock(chs[3], transformer_dims[0], transformer_depth=1)),
            nn.Sequential(InvertedResidual(chs[3], chs[4], 2),  # 4x4
                          MobileVitBlock(chs[4], transformer_dims[1], transformer_depth=1)),
        )
        self.final_conv = ConvNormAct(chs[4], num_features, 1)
        self.head = nn.Linear(num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_conv(self.stages(self.stem(x)))
        return self.head(x.mean((2, 3)))


def make_spec():
    torch.manual_seed(0)
    return image_spec("zoo_hybrid_unfold", MobileVit(), (1, 3, 64, 64), seed=70)
