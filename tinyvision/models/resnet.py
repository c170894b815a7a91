"""ResNet-18/34/50/101 (torchvision's definitions) with a small-image stem, and pre-activation ResNet.

Small stem (default): 3x3 stride-1 conv and no max-pool, so a 32 px input reaches the last stage at
4x4 rather than 1x1. `stem="imagenet"` keeps torchvision's 7x7/2 conv + max-pool. `stem="3x3x3"`
is seed report 003's: "instead of using a large 7x7 convolution in the beginning, we use a stack of
three 3x3 convolutions" (ResNet-C of Bag of Tricks; widths 32, 32, 64 assumed, stride 1 and no
max-pool as the small stem, for 28-32 px inputs).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet as tv

from tinyvision.data.dataset import IMAGENET_NORMALIZATION
from tinyvision.models.registry import register_model


def _adapt_stem(model: nn.Module, in_chans: int, stem: str) -> nn.Module:
    if stem == "small":
        model.conv1 = nn.Conv2d(in_chans, 64, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif stem == "3x3x3":
        layers, c = [], in_chans
        for w in (32, 32):
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        model.conv1 = nn.Sequential(*layers, nn.Conv2d(c, 64, 3, padding=1, bias=False))  # bn1 + relu follow
        model.maxpool = nn.Identity()
    elif in_chans != 3:
        model.conv1 = nn.Conv2d(in_chans, 64, 7, stride=2, padding=3, bias=False)
    return model


TV_RESNETS = {"resnet18": tv.resnet18, "resnet34": tv.resnet34, "resnet50": tv.resnet50, "resnet101": tv.resnet101}

for _name, _fn in TV_RESNETS.items():  # `--pretrained true`: torchvision's weights (with stem="imagenet")
    register_model(_name, min_size=28, family="resnet", normalization=IMAGENET_NORMALIZATION, torchvision_arch=_name)(
        lambda num_classes=1000, in_chans=3, stem="small", _fn=_fn: _adapt_stem(_fn(num_classes=num_classes), in_chans,
                                                                                stem))


class PreActBlock(nn.Module):
    """He et al. 2016, 'Identity mappings': BN -> ReLU -> conv, twice; shortcut from the pre-activation."""

    expansion = 1

    def __init__(self, cin, cout, stride=1, dropout=0.0):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.shortcut = None if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        sc = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = F.relu(self.bn2(out))
        if self.dropout:
            out = F.dropout(out, self.dropout, self.training)
        return self.conv2(out) + sc


class PreActResNet(nn.Module):
    """Pre-activation ResNet; with `widths` (16k, 32k, 64k) and 3 stages it is a Wide ResNet."""

    def __init__(self, blocks=(2, 2, 2, 2), widths=(64, 128, 256, 512), num_classes=10, in_chans=3, stem_width=64,
                 dropout=0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, stem_width, 3, 1, 1, bias=False)
        layers, c = [], stem_width
        for i, (n, w) in enumerate(zip(blocks, widths)):
            for j in range(n):
                layers.append(PreActBlock(c, w, stride=2 if i > 0 and j == 0 else 1, dropout=dropout))
                c = w
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = F.relu(self.bn(self.layers(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


@register_model("preact_resnet18", family="resnet")
def preact_resnet18(num_classes=10, in_chans=3):
    return PreActResNet((2, 2, 2, 2), num_classes=num_classes, in_chans=in_chans)


@register_model("preact_resnet34", family="resnet")
def preact_resnet34(num_classes=10, in_chans=3):
    return PreActResNet((3, 4, 6, 3), num_classes=num_classes, in_chans=in_chans)


def wide_resnet(depth: int, k: int, num_classes=10, in_chans=3, dropout=0.0):
    """Zagoruyko & Komodakis: WRN-depth-k, (depth - 4) / 6 blocks per stage, widths 16k, 32k, 64k."""
    n = (depth - 4) // 6
    return PreActResNet((n, n, n), (16 * k, 32 * k, 64 * k), num_classes, in_chans, stem_width=16, dropout=dropout)


@register_model("wrn16_4", family="wrn")
def wrn16_4(num_classes=10, in_chans=3, dropout=0.0):
    return wide_resnet(16, 4, num_classes, in_chans, dropout)


@register_model("wrn28_10", family="wrn")
def wrn28_10(num_classes=10, in_chans=3, dropout=0.0):
    return wide_resnet(28, 10, num_classes, in_chans, dropout)
