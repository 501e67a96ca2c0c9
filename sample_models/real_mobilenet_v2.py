"""MobileNetV2 at full size (torchvision's ``mobilenet_v2``: width 1.0, stage repeats (1,2,3,4,3,3,1), 1280-channel
head, 1000 classes) on a 224x224 image: 52 convolutions, 3.5 M parameters, random seeded weights with re-estimated
batch-norm statistics. For timing (``bench/latency.py``): the shipped samples run in a tenth of a millisecond."""
from __future__ import annotations

import torch
from torch import nn

from quantviz.model_spec import ModelSpec
from sample_models.zoo_common import reestimate_batchnorm
from sample_models.zoo_inverted_residual import Conv2dNormActivation, InvertedResidual, _make_divisible


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, round_nearest: int = 8,
                 dropout: float = 0.2) -> None:
        super().__init__()
        input_channel, last_channel = 32, 1280
        inverted_residual_setting = [  # t (expansion), c (channels), n (repeats), s (first stride)
            [1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1],
        ]
        input_channel = _make_divisible(input_channel * width_mult, round_nearest)
        self.last_channel = _make_divisible(last_channel * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [Conv2dNormActivation(3, input_channel, stride=2)]
        for t, c, n, s in inverted_residual_setting:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel, s if i == 0 else 1, expand_ratio=t))
                input_channel = output_channel
        features.append(Conv2dNormActivation(input_channel, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        return self.classifier(x)


def make_spec():
    torch.manual_seed(0)
    model = reestimate_batchnorm(MobileNetV2(), (1, 3, 224, 224), batches=2, batch_size=4, seed=70)
    gen = torch.Generator().manual_seed(71)
    batches = [(torch.randn(1, 3, 224, 224, generator=gen),) for _ in range(3)]  # 2 calibrate, 1 evaluates
    return ModelSpec(name="real_mobilenet_v2", model=model, example_inputs=batches[0], calibration_batches=batches[:2],
                     eval_batches=[(batches[2], None)])
