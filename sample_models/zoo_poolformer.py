"""PoolFormer / MetaFormer (Yu et al. 2022, the reference implementation's structure), tiny: 7x7/4
patch-embedding conv, blocks of GroupNorm(1, C), token mixer ``AvgPool2d(3, 1, 1) - x``, layer
scale, residual, GroupNorm(1, C), MLP of 1x1 convs with GELU, layer scale, residual; 3x3/2 conv
downsampling between stages. Layers (1, 1, 2, 1) (S12: 2, 2, 6, 2), dims (16, 32, 64, 96), 64x64 input."""
from __future__ import annotations

import torch
from torch import nn

from sample_models.zoo_common import image_spec, trained_like_weights


class PatchEmbed(nn.Module):
    """Patch embedding (or downsampling) by a strided conv: (B, C, H, W) -> (B, C', H/stride, W/stride)."""

    def __init__(self, patch_size: int = 16, stride: int = 16, padding: int = 0, in_chans: int = 3,
                 embed_dim: int = 768) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride, padding=padding)
        self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class GroupNorm(nn.GroupNorm):
    """GroupNorm with 1 group: normalises over (C, H, W). Input: (B, C, H, W)."""

    def __init__(self, num_channels: int, **kwargs) -> None:
        super().__init__(1, num_channels, **kwargs)


class Pooling(nn.Module):
    def __init__(self, pool_size: int = 3) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) - x


class Mlp(nn.Module):
    """MLP with 1x1 convolutions. Input: (B, C, H, W)."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(in_features, hidden_features, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_features, in_features, 1)
        self.drop = nn.Dropout(drop)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Conv2d):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.fc1(x)))
        return self.drop(self.fc2(x))


class PoolFormerBlock(nn.Module):
    def __init__(self, dim: int, pool_size: int = 3, mlp_ratio: float = 4.0, use_layer_scale: bool = True,
                 layer_scale_init_value: float = 1e-5) -> None:
        super().__init__()
        self.norm1 = GroupNorm(dim)
        self.token_mixer = Pooling(pool_size=pool_size)
        self.norm2 = GroupNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.use_layer_scale = use_layer_scale
        if use_layer_scale:
            self.layer_scale_1 = nn.Parameter(layer_scale_init_value * torch.ones(dim), requires_grad=True)
            self.layer_scale_2 = nn.Parameter(layer_scale_init_value * torch.ones(dim), requires_grad=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_layer_scale:
            x = x + self.layer_scale_1.unsqueeze(-1).unsqueeze(-1) * self.token_mixer(self.norm1(x))
            x = x + self.layer_scale_2.unsqueeze(-1).unsqueeze(-1) * self.mlp(self.norm2(x))
        else:
            x = x + self.token_mixer(self.norm1(x))
            x = x + self.mlp(self.norm2(x))
        return x


class PoolFormer(nn.Module):
    def __init__(self, layers=(1, 1, 2, 1), embed_dims=(16, 32, 64, 96), mlp_ratios=(4, 4, 4, 4),
                 num_classes: int = 10, pool_size: int = 3, layer_scale_init_value: float = 1e-5) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(patch_size=7, stride=4, padding=2, in_chans=3, embed_dim=embed_dims[0])
        network: list[nn.Module] = []
        for i in range(len(layers)):
            network.append(nn.Sequential(*[
                PoolFormerBlock(embed_dims[i], pool_size, mlp_ratios[i], layer_scale_init_value=layer_scale_init_value)
                for _ in range(layers[i])]))
            if i < len(layers) - 1:
                network.append(PatchEmbed(patch_size=3, stride=2, padding=1, in_chans=embed_dims[i],
                                          embed_dim=embed_dims[i + 1]))
        self.network = nn.ModuleList(network)
        self.norm = GroupNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for block in self.network:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.forward_features(x))
        return self.head(x.mean([-2, -1]))  # global average pooling


def make_spec():
    torch.manual_seed(0)
    # layer scales start at 1e-5 in training; a trained model's are O(0.1..1), so use 0.5 for the random model
    model = trained_like_weights(PoolFormer(layer_scale_init_value=0.5), seed=91)
    return image_spec("zoo_poolformer", model, (1, 3, 64, 64), seed=90)
