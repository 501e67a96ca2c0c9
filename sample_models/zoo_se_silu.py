"""EfficientNet-B0-style network (Tan & Le 2019), narrowed and shortened: MBConv blocks with
1x1 expansion, 3x3/5x5 depthwise convolution, squeeze-and-excitation (adaptive average pool,
1x1 reduce conv, SiLU, 1x1 expand conv, sigmoid gate multiply), linear projection and residual
adds; SiLU activations throughout. 31 convolutions, 40x40 input."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from sample_models.zoo_common import image_spec


def make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class ConvBnAct(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = nn.SiLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    def __init__(self, in_chs: int, rd_chs: int) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(in_chs, rd_chs, 1, bias=True)
        self.act1 = nn.SiLU(inplace=True)
        self.conv_expand = nn.Conv2d(rd_chs, in_chs, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_se = F.adaptive_avg_pool2d(x, 1)
        x_se = self.conv_reduce(x_se)
        x_se = self.act1(x_se)
        x_se = self.conv_expand(x_se)
        return x * self.gate(x_se)


class DepthwiseSeparableConv(nn.Module):
    """The first stage of EfficientNet: depthwise conv, SE, pointwise projection (no expansion)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int, se_ratio: float = 0.25) -> None:
        super().__init__()
        self.has_skip = stride == 1 and in_chs == out_chs
        self.conv_dw = ConvBnAct(in_chs, in_chs, kernel_size, stride, groups=in_chs)
        self.se = SqueezeExcite(in_chs, max(1, int(in_chs * se_ratio)))
        self.conv_pw = ConvBnAct(in_chs, out_chs, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_pw(self.se(self.conv_dw(x)))
        return x + shortcut if self.has_skip else x


class InvertedResidual(nn.Module):
    """MBConv: expand, depthwise, SE (reduced from the block's input width), project, skip."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int, exp_ratio: float,
                 se_ratio: float = 0.25) -> None:
        super().__init__()
        mid_chs = make_divisible(in_chs * exp_ratio)
        self.has_skip = stride == 1 and in_chs == out_chs
        self.conv_pw = ConvBnAct(in_chs, mid_chs, 1)
        self.conv_dw = ConvBnAct(mid_chs, mid_chs, kernel_size, stride, groups=mid_chs)
        self.se = SqueezeExcite(mid_chs, max(1, int(in_chs * se_ratio)))
        self.conv_pwl = ConvBnAct(mid_chs, out_chs, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_pw(x)
        x = self.conv_dw(x)
        x = self.se(x)
        x = self.conv_pwl(x)
        return x + shortcut if self.has_skip else x


class EfficientNet(nn.Module):
    # (block type, repeats, kernel, stride, expansion, out channels): the first five rows of B0's table, fewer repeats
    ARCH = [("ds", 1, 3, 1, 1, 16), ("ir", 1, 3, 2, 6, 24), ("ir", 2, 5, 2, 6, 40), ("ir", 1, 3, 2, 6, 80),
            ("ir", 1, 5, 1, 6, 112)]

    def __init__(self, num_classes: int = 10, width_multiplier: float = 0.5, num_features: int = 320,
                 drop_rate: float = 0.2) -> None:
        super().__init__()
        stem_chs = make_divisible(32 * width_multiplier)
        self.conv_stem = ConvBnAct(3, stem_chs, 3, stride=2)
        stages, in_chs = [], stem_chs
        for kind, repeats, k, s, e, c in self.ARCH:
            out_chs, blocks = make_divisible(c * width_multiplier), []
            for i in range(repeats):
                stride = s if i == 0 else 1
                blocks.append(DepthwiseSeparableConv(in_chs, out_chs, k, stride) if kind == "ds"
                              else InvertedResidual(in_chs, out_chs, k, stride, e))
                in_chs = out_chs
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.conv_head = ConvBnAct(in_chs, num_features, 1)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(num_features, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0, (2.0 / fan_out) ** 0.5)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / m.weight.size(0) ** 0.5
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_head(self.blocks(self.conv_stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.global_pool(self.forward_features(x)).flatten(1)
        return self.classifier(self.dropout(x))


def make_spec():
    torch.manual_seed(0)
    return image_spec("zoo_se_silu", EfficientNet(), (1, 3, 40, 40), seed=30)
