"""Seed report 004 (Tiny ImageNet at 32x32, Keras): experiment 1's network and the AlexNet for 32x32.

seed004-net reproduces the summary table, quirk included: the images reached Keras channels-first
(3, 32, 32) while Keras read them channels-last, so the 2x2 conv saw a 3x32 'image' with 32
channels (the image rows): output (2, 31, 32), 4,128 parameters. A 2x2 max-pool gives (1, 15, 32);
the Dense layers then act on the last axis only (32 -> 1024 -> 512 x 6), and Flatten (7,680) ->
Dense 512 -> Dense 200. 5,911,272 parameters. Activations are not shown; ReLU is assumed.
In PyTorch terms an NCHW batch x is read as NHWC with H = C: we permute x to (N, W, C, H).

seed004-alexnet32 from its table: conv 3x3/2 'same' 96 -> pool 2 -> BN -> conv 5x5 256 -> pool 3/2
-> BN -> conv 3x3 384, 384, 256 -> pool 3/2 -> BN -> FC 4096, 4096 (dropout) -> 200.
22,369,544 trainable parameters + 1,216 BN statistics = Keras' 22,370,760.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from tinyvision.models.registry import check_input, register_model


class Seed004Net(nn.Module):
    def __init__(self, num_classes=200, in_chans=3):
        super().__init__()
        self.conv = nn.Conv2d(32, 32, kernel_size=2)  # 32 'channels' = the image's 32 rows
        self.dense = nn.ModuleList([nn.Linear(32, 1024), nn.Linear(1024, 512)] + [nn.Linear(512, 512) for _ in range(5)])
        self.fc = nn.Linear(15 * 512, 512)
        self.out = nn.Linear(512, num_classes)
        self.in_chans = in_chans

    def forward(self, x):
        check_input("seed004-net", 32, x)
        if x.shape[1] < 2:
            raise ValueError("seed004-net reads the channel axis as image height and needs at least 2 channels")
        x = x.permute(0, 3, 1, 2)  # (N, C, H, W) read as NHWC: Keras H = C, W = H, channels = W
        x = F.max_pool2d(F.relu(self.conv(x)), 2)  # (N, 32, 1, 15) for 3-channel input
        x = x.permute(0, 2, 3, 1)  # Dense acts on the channel axis
        for d in self.dense:
            x = F.relu(d(x))
        return self.out(F.relu(self.fc(x.flatten(1))))


class AlexNet32(nn.Module):
    def __init__(self, num_classes=200, in_chans=3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 96, 3, stride=2, padding=1), nn.ReLU(True), nn.MaxPool2d(2), nn.BatchNorm2d(96),
            nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(True), nn.MaxPool2d(3, 2), nn.BatchNorm2d(256),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(3, 2), nn.BatchNorm2d(256))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(256, 4096), nn.ReLU(True), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(0.5), nn.Linear(4096, num_classes))

    def forward(self, x):
        check_input("seed004-alexnet32", 32, x)
        return self.classifier(self.features(x))


@register_model("seed004-net", input_sizes=(32,), family="seed004", in_chans=(3,))
def seed004_net(num_classes=200, in_chans=3):
    return Seed004Net(num_classes, in_chans)


@register_model("seed004-alexnet32", input_sizes=(32,), family="seed004")
def seed004_alexnet32(num_classes=200, in_chans=3):
    return AlexNet32(num_classes, in_chans)
