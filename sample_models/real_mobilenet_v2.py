"""MobileNetV2 at full size (torchvision's ``mobilenet_v2``: width 1.0, stage repeats (1,2,3,4,3,3,1), 1280-channel
head, 1000 classes) on a 224x224 image: 52 convolutions, 3.5 M parameters, random seeded weights with re-estimated
batch-norm statistics. For timing (``bench/latency.py``): the shipped samples run in a tenth of a millisecond."""
from __future__ import annotations

import torch

from sample_models.zoo_common import image_spec
from sample_models.zoo_inverted_residual import MobileNetV2


# torchvision's stage table: t (expansion), c (channels), n (repeats), s (first stride)
TORCHVISION_SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
                       [6, 320, 1, 1]]


def full_size_mobilenet_v2() -> MobileNetV2:
    """The zoo's MobileNetV2 at torchvision's size: width 1.0, its stage repeats, a 1280-channel head, 1000 classes."""
    return MobileNetV2(num_classes=1000, width_mult=1.0, last_channel=1280,
                       inverted_residual_setting=TORCHVISION_SETTING)


def make_spec():
    torch.manual_seed(0)
    # 224x224: batch norm re-estimated on 2 batches of 4 (not the zoo's 4 of 8); 2 batches calibrate, 1 evaluates
    return image_spec("real_mobilenet_v2", full_size_mobilenet_v2(), (1, 3, 224, 224), seed=69, calibration=2, evaluation=1,
                      bn_batches=2, bn_batch_size=4)
