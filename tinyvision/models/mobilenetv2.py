"""MobileNetV2 (torchvision's) for small images: stride 1 in the stem and the second stage,
as the usual CIFAR adaptation does, so 32 px inputs end at 4x4 rather than 1x1."""
from __future__ import annotations

from torch import nn
from torchvision.models import mobilenetv2 as tvm

from tinyvision.data.dataset import IMAGENET_NORMALIZATION
from tinyvision.models.registry import register_model


@register_model("mobilenetv2", min_size=28, family="mobilenet", torchvision_arch="mobilenet_v2",
                normalization=IMAGENET_NORMALIZATION)
def mobilenetv2(num_classes=1000, in_chans=3, stem="small", width_mult=1.0):
    model = tvm.mobilenet_v2(num_classes=num_classes, width_mult=width_mult)
    first = model.features[0][0]
    stride = 1 if stem == "small" else 2
    model.features[0][0] = nn.Conv2d(in_chans, first.out_channels, 3, stride, 1, bias=False)
    if stem == "small":
        model.features[2].conv[1][0].stride = (1, 1)  # second stage's depthwise conv
    return model
