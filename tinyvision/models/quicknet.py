"""quicknet: a small, fast all-conv net for the per-dataset default recipes (the demo's model).

Shaped after airbench's CIFAR-10 network (Keller Jordan): a stem conv, then stages of
conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU, global max-pool, a scaled linear head.
Each stage halves the side and doubles the width. Any input of 16 px or more.
"""
from __future__ import annotations

import torch
from torch import nn

from tinyvision.models.registry import register_model


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU()]


class QuickNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, widths=(32, 64, 128), stem: int = 24,
                 head_scale: float = 1 / 9, dropout: float = 0.0):
        super().__init__()
        layers = _conv_bn(in_chans, stem)
        cin = stem
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(w), nn.GELU(),
                       *_conv_bn(w, w)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(cin, num_classes, bias=False)
        self.head_scale = head_scale  # airbench's trick: a small logit scale trains faster with a high lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.pool(self.features(x)).flatten(1))) * self.head_scale


@register_model("quicknet", min_size=16, family="quicknet")
def quicknet(num_classes=10, in_chans=3, **kw):
    return QuickNet(num_classes, in_chans, **kw)


@register_model("quicknet-wide", min_size=16, family="quicknet")
def quicknet_wide(num_classes=10, in_chans=3, **kw):
    return QuickNet(num_classes, in_chans, **{"widths": (64, 128, 256), "stem": 32, **kw})
