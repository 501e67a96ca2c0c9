"""RegNetX-200MF (Radosavovic et al. 2020) as torchvision's ``regnet_x_200mf`` writes it: a stride-2 3x3 stem,
four stages of residual bottleneck blocks (1x1 conv, 3x3 group conv with group width 8, 1x1 conv; a strided 1x1
projection on the shortcut when the shape changes), widths (24, 56, 152, 368), depths (1, 1, 4, 7), bottleneck
ratio 1, global average pool and a 1000-class Linear; 224x224 input, 2.7 M parameters, random seeded weights with
re-estimated batch-norm statistics."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from sample_models.zoo_common import image_spec


class Conv2dNormActivation(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 activation: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_channels)]
        if activation:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class BottleneckTransform(nn.Sequential):
    """1x1 -> 3x3 group conv (stride) -> 1x1, the last without activation."""

    def __init__(self, width_in: int, width_out: int, stride: int, group_width: int, bottleneck_multiplier: float):
        w_b = int(round(width_out * bottleneck_multiplier))
        g = w_b // group_width
        super().__init__()
        self.a = Conv2dNormActivation(width_in, w_b, 1)
        self.b = Conv2dNormActivation(w_b, w_b, 3, stride=stride, groups=g)
        self.c = Conv2dNormActivation(w_b, width_out, 1, activation=False)


class ResBottleneckBlock(nn.Module):
    def __init__(self, width_in: int, width_out: int, stride: int, group_width: int = 8,
                 bottleneck_multiplier: float = 1.0) -> None:
        super().__init__()
        self.proj = None
        if width_in != width_out or stride != 1:
            self.proj = Conv2dNormActivation(width_in, width_out, 1, stride=stride, activation=False)
        self.f = BottleneckTransform(width_in, width_out, stride, group_width, bottleneck_multiplier)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is not None:
            x = self.proj(x) + self.f(x)
        else:
            x = x + self.f(x)
        return self.activation(x)


class AnyStage(nn.Sequential):
    def __init__(self, width_in: int, width_out: int, stride: int, depth: int, group_width: int) -> None:
        super().__init__()
        for i in range(depth):
            self.add_module(f"block{i + 1}", ResBottleneckBlock(width_in if i == 0 else width_out, width_out,
                                                                stride if i == 0 else 1, group_width))


class RegNet(nn.Module):
    def __init__(self, widths=(24, 56, 152, 368), depths=(1, 1, 4, 7), group_width: int = 8,
                 stem_width: int = 32, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = Conv2dNormActivation(3, stem_width, 3, stride=2)
        stages, current = [], stem_width
        for i, (w, d) in enumerate(zip(widths, depths)):
            stages.append((f"block{i + 1}", AnyStage(current, w, 2, d, group_width)))
            current = w
        self.trunk_output = nn.Sequential(OrderedDict(stages))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(current, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, mean=0.0, std=(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels))
                                ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, mean=0.0, std=0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.trunk_output(x)
        x = self.avgpool(x)
        x = x.flatten(start_dim=1)
        return self.fc(x)


def make_spec():
    torch.manual_seed(0)
    # 224x224: batch norm re-estimated on 2 batches of 4 (not the zoo's 4 of 8); 2 batches calibrate, 1 evaluates
    return image_spec("real_regnetx_200mf", RegNet(), (1, 3, 224, 224), seed=79, calibration=2, evaluation=1,
                      bn_batches=2, bn_batch_size=4)
