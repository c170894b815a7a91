"""Seed report 001 (Tiny ImageNet slides): the linear model, the 2-layer CNN and the multi-layer CNN.

The slides give no layer listings, only 'a basic 2-layer CNN (kernel size 3, stride 1, padding 1)
with maxpool and dropouts' and 'a multi-layer CNN with maxpool and dropouts'. Inferred: widths
32 and 64 for the 2-layer CNN, 32-64-128-256 for the multi-layer one, a 2x2 max-pool after each
conv, dropout 0.25 after the convs and 0.5 before the classifier. Their 95% train / 15% val
accuracy fits such FC-heavy nets. All take 64x64 inputs (the FC size depends on it).
"""
from __future__ import annotations

from torch import nn

from tinyvision.models.registry import check_input, register_model

SIZE = 64


class Linear(nn.Module):
    def __init__(self, num_classes=200, in_chans=3):
        super().__init__()
        self.fc = nn.Linear(in_chans * SIZE * SIZE, num_classes)

    def forward(self, x):
        check_input("seed001-linear", SIZE, x)
        return self.fc(x.flatten(1))


class SmallCNN(nn.Module):
    def __init__(self, num_classes=200, in_chans=3, widths=(32, 64), hidden=None, name="seed001-cnn2"):
        super().__init__()
        self.name = name
        layers, c = [], in_chans
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, stride=1, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = w
        layers.append(nn.Dropout(0.25))
        self.features = nn.Sequential(*layers)
        side = SIZE // 2 ** len(widths)
        head = [nn.Flatten(), nn.Dropout(0.5)]
        if hidden:
            head += [nn.Linear(c * side * side, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(hidden, num_classes)]
        else:
            head.append(nn.Linear(c * side * side, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x):
        check_input(self.name, SIZE, x)
        return self.classifier(self.features(x))


@register_model("seed001-linear", input_sizes=(SIZE,), family="seed001")
def seed001_linear(num_classes=200, in_chans=3):
    return Linear(num_classes, in_chans)


@register_model("seed001-cnn2", input_sizes=(SIZE,), family="seed001")
def seed001_cnn2(num_classes=200, in_chans=3):
    return SmallCNN(num_classes, in_chans)


@register_model("seed001-cnn-multi", input_sizes=(SIZE,), family="seed001")
def seed001_cnn_multi(num_classes=200, in_chans=3):
    return SmallCNN(num_classes, in_chans, (32, 64, 128, 256), hidden=512, name="seed001-cnn-multi")
