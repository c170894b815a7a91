"""Seed report 002 (Tiny ImageNet): the 5-conv network (43.89% after 65 epochs) and its weaker variant.

net1, as listed: conv(k5, p2) -> ReLU -> BN -> max-pool for convs 1-4 (conv 4 has a 2x2 kernel
with padding 2, which grows 8x8 maps to 11x11), conv 5 without pool, so 64x64 inputs end as
128x5x5 = 3200 features; FC 3200 -> 1024 -> ReLU -> BN1d -> Dropout(0.5) -> 200.
4,790,728 trainable parameters at 200 classes.

net2 uses 5x5 kernels throughout and a Softmax as the hidden FC's activation. Its listing has
Linear(512, 400), i.e. 128x2x2 features: four pools leave 2x2 only from 32x32 inputs, so net2
is the 32x32 network (inferred; the report does not state its input size).
"""
from __future__ import annotations

from torch import nn

from tinyvision.models.registry import check_input, register_model


def _block(cin, cout, k, pool=True):
    layers = [nn.Conv2d(cin, cout, kernel_size=k, stride=1, padding=2), nn.ReLU(True), nn.BatchNorm2d(cout)]
    return layers + [nn.MaxPool2d(2, 2)] if pool else layers


class Seed002Net(nn.Module):
    def __init__(self, num_classes=200, in_chans=3, widths=(128, 128, 128, 128, 128), k4=2, hidden=1024,
                 act: type = nn.ReLU, size=64, name="seed002-net1"):
        super().__init__()
        self.name, self.size = name, size
        w = [in_chans, *widths]
        ks = [5, 5, 5, k4, 5]
        self.features = nn.Sequential(*[l for i in range(5) for l in _block(w[i], w[i + 1], ks[i], pool=i < 4)])
        side = size
        for i, k in enumerate(ks):
            side = side + 4 - k + 1
            if i < 4:
                side //= 2
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(w[5] * side * side, hidden), act() if act is nn.ReLU else act(1),
            nn.BatchNorm1d(hidden), nn.Dropout(0.5), nn.Linear(hidden, num_classes))

    def forward(self, x):
        check_input(self.name, self.size, x)
        return self.classifier(self.features(x))


@register_model("seed002-net1", input_sizes=(64,), family="seed002")
def seed002_net1(num_classes=200, in_chans=3):
    return Seed002Net(num_classes, in_chans)


@register_model("seed002-net2", input_sizes=(32,), family="seed002")
def seed002_net2(num_classes=200, in_chans=3):
    return Seed002Net(num_classes, in_chans, (64, 128, 128, 128, 128), k4=5, hidden=400, act=nn.Softmax, size=32,
                      name="seed002-net2")
