"""MobileNetV1 as ported from TensorFlow: depthwise-separable convolutions with TF "SAME" padding.

Every convolution is a ``Conv2dSame``, which pads its input at run time with the module-level
helper ``pad_same`` (as timm's ``conv2d_same`` / TF-EfficientNet ports do), so stride-2 layers pad
asymmetrically (0 before, 1 after). ``pad_same`` reads ``int(x.shape[-2])``: ``torch.fx`` symbolic
tracing cannot follow it, ``torch.export`` specialises it. 19 convolutions, 48x48 input.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from sample_models.zoo_common import image_spec


def get_same_padding(size: int, kernel_size: int, stride: int, dilation: int = 1) -> int:
    return max((math.ceil(size / stride) - 1) * stride + (kernel_size - 1) * dilation + 1 - size, 0)


def pad_same(x: torch.Tensor, kernel_size: int, stride: int, dilation: int = 1, value: float = 0.0) -> torch.Tensor:
    """Pad ``x`` like TensorFlow's padding="SAME": output size ceil(input / stride), extra padding after."""
    in_height = int(x.shape[-2])
    in_width = int(x.shape[-1])
    pad_h = get_same_padding(in_height, kernel_size, stride, dilation)
    pad_w = get_same_padding(in_width, kernel_size, stride, dilation)
    if pad_h > 0 or pad_w > 0:
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2], value=value)
    return x


class Conv2dSame(nn.Conv2d):
    """nn.Conv2d with TensorFlow-style "SAME" padding (square kernels)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                 groups: int = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel_size[0], self.stride[0], self.dilation[0])
        return F.conv2d(x, self.weight, self.bias, self.stride, (0, 0), self.dilation, self.groups)


class ConvBnAct(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = Conv2dSame(in_chs, out_chs, kernel_size, stride, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_chs, eps=1e-3, momentum=0.01)  # TF defaults
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DepthwiseSeparableConv(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, stride: int) -> None:
        super().__init__()
        self.conv_dw = ConvBnAct(in_chs, in_chs, 3, stride, groups=in_chs)
        self.conv_pw = ConvBnAct(in_chs, out_chs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_pw(self.conv_dw(x))


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class MobileNetV1(nn.Module):
    # (out_channels, stride) of the depthwise-separable blocks: the paper's 13 with the five 512-wide
    # repeats cut to one
    CFG = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (1024, 2), (1024, 1)]

    def __init__(self, num_classes: int = 10, width_multiplier: float = 0.25, drop_rate: float = 0.0) -> None:
        super().__init__()
        stem_chs = make_divisible(32 * width_multiplier)
        self.conv_stem = ConvBnAct(3, stem_chs, 3, stride=2)
        blocks, in_chs = [], stem_chs
        for out_chs, stride in self.CFG:
            out_chs = make_divisible(out_chs * width_multiplier)
            blocks.append(DepthwiseSeparableConv(in_chs, out_chs, stride))
            in_chs = out_chs
        self.blocks = nn.Sequential(*blocks)
        self.num_features = in_chs
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(self.num_features, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.conv_stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.global_pool(self.forward_features(x)).flatten(1)
        return self.classifier(self.dropout(x))


def make_spec():
    torch.manual_seed(0)
    return image_spec("zoo_tf_mobilenet", MobileNetV1(), (1, 3, 48, 48), seed=10)
