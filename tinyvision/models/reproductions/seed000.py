"""Seed report 000 (Tiny ImageNet, PyTorch): classifiers 1, 2, 3, 4, 4.2, 5 and 7, at 64x64.

Reconstructed from the report's (partly garbled) code listings. What had to be inferred:
- Every classifier defines BN2 but its forward never uses it after conv2; we follow the forward
  and leave BN2 out (an unused module would hold parameters that never train).
- Classifier 3's forward normalizes conv2 with BN1 (a shared layer); reproduced as written.
- Classifier 2's second middle FC is printed as `f.inner_2` but maps 128x8x8 -> 128x8x8, so it is
  a Linear(8192, 8192) of its own; its first maps 64x16x16 -> 64x16x16.
- Classifier 4 has no listing; the text says 'deeper convolutions 128 to 1024 channels', and
  4.2's listing shows those convolutions with the FC head 16384-8192-4096-2048-1024-512-200,
  which 4 shares. 4.2 adds the middle classifier on 512x8x8 (32768-8192-...-200), summed in.
- Classifier 5's last FC prints as Linear(1027, 200): a misread 512.
- Dropout2d uses PyTorch's default p = 0.5, as the listings construct it.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from tinyvision.models.registry import check_input, register_model

SIZE = 64


def _conv(cin, cout):
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1)


class _EightConv(nn.Module):
    """The conv trunk of classifiers 1, 4 and 7: conv2 without BN; pool after every second conv."""

    DROPPED = (1, 2, 3, 5, 7)  # the convs whose output the listings pass through conv2_drop

    def __init__(self, in_chans, widths):
        super().__init__()
        w = widths
        chans = [in_chans, w[0], w[0], w[1], w[1], w[2], w[2], w[3], w[3]]
        self.convs = nn.ModuleList(_conv(chans[i], chans[i + 1]) for i in range(8))
        self.bns = nn.ModuleDict({str(i): nn.BatchNorm2d(chans[i + 1]) for i in range(8) if i != 1})
        self.drop = nn.Dropout2d()

    def block(self, x, i):
        """conv i (0-based) as the report's forward applies it."""
        y = self.convs[i](x)
        if str(i) in self.bns:
            y = self.bns[str(i)](y)
        y = F.relu(y)
        if i % 2 == 1:
            y = F.max_pool2d(y, 2)
        return self.drop(y) if i in self.DROPPED else y

    def stage(self, x, stage):  # stage 0..3 = convs (2s, 2s+1)
        for i in (2 * stage, 2 * stage + 1):
            x = self.block(x, i)
        return x


def _mlp(dims):
    return nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))


def _run_mlp(layers, x):
    for i, fc in enumerate(layers):
        x = fc(x)
        if i < len(layers) - 1:
            x = F.relu(x)
    return x


class Classifier1(nn.Module):
    """Classifier 1 (and 4 with widths 128-1024): 8 conv + FC head."""

    def __init__(self, num_classes=200, in_chans=3, widths=(32, 64, 128, 256), head=(1024, 512), name="seed000-clf1"):
        super().__init__()
        self.name = name
        self.trunk = _EightConv(in_chans, widths)
        self.fc = _mlp([widths[3] * 16, *head, num_classes])

    def features(self, x):
        check_input(self.name, SIZE, x)
        for s in range(4):
            x = self.trunk.stage(x, s)
        return x

    def forward(self, x):
        return _run_mlp(self.fc, self.features(x).flatten(1))


class Classifier4_2(Classifier1):
    """Classifier 4.2: classifier 4 plus a middle FC classifier on the 512x8x8 maps, logits summed."""

    def __init__(self, num_classes=200, in_chans=3):
        super().__init__(num_classes, in_chans, (128, 256, 512, 1024), (8192, 4096, 2048, 1024, 512), "seed000-clf4_2")
        self.fc_mid = _mlp([512 * 8 * 8, 8192, 4096, 2048, 1024, 512, num_classes])

    def forward(self, x):
        check_input(self.name, SIZE, x)
        for s in range(3):
            x = self.trunk.stage(x, s)
        y = _run_mlp(self.fc_mid, x.flatten(1))
        x = self.trunk.stage(x, 3)
        return _run_mlp(self.fc, x.flatten(1)) + y


class Classifier2(nn.Module):
    """Classifier 2: FC layers between conv blocks, reshaped back into feature maps."""

    def __init__(self, num_classes=200, in_chans=3):
        super().__init__()
        self.trunk = _EightConv(in_chans, (32, 64, 128, 256))
        self.fc_inner_2 = nn.Linear(64 * 16 * 16, 64 * 16 * 16)
        self.fc_inner_3 = nn.Linear(128 * 8 * 8, 128 * 8 * 8)
        self.fc = _mlp([4096, 1024, 512, num_classes])

    def forward(self, x):
        check_input("seed000-clf2", SIZE, x)
        x = self.trunk.stage(self.trunk.stage(x, 0), 1)
        x = F.relu(self.fc_inner_2(x.flatten(1))).view(-1, 64, 16, 16)
        x = self.trunk.stage(x, 2)
        x = F.relu(self.fc_inner_3(x.flatten(1))).view(-1, 128, 8, 8)
        x = self.trunk.stage(x, 3)
        return _run_mlp(self.fc, x.flatten(1))


class Classifier3(nn.Module):
    """Classifier 3: an FC layer (32768 -> 8192) in place of the third max-pool."""

    def __init__(self, num_classes=200, in_chans=3):
        super().__init__()
        c = [in_chans, 32, 32, 64, 64, 128, 128, 256, 256]
        self.conv = nn.ModuleList(_conv(c[i], c[i + 1]) for i in range(8))
        self.bn = nn.ModuleList(nn.BatchNorm2d(c[i + 1]) for i in range(8))
        del self.bn[1]  # BN2 is never used: conv2 goes through BN1 (as the listing does)
        self.drop = nn.Dropout2d()
        self.fc_inner_3 = nn.Linear(32768, 8192)
        self.fc = _mlp([4096, 1024, 512, num_classes])

    def forward(self, x):
        check_input("seed000-clf3", SIZE, x)
        cv, bn, d = self.conv, self.bn, self.drop  # bn[k] is BN(k+1) for k = 0, and BN(k+2) after
        x = F.relu(bn[0](cv[0](x)))
        x = d(F.max_pool2d(F.relu(bn[0](cv[1](x))), 2))
        x = d(F.relu(bn[1](cv[2](x))))
        x = d(F.max_pool2d(F.relu(bn[2](cv[3](x))), 2))
        x = F.relu(bn[3](cv[4](x)))
        x = d(F.relu(bn[4](cv[5](x))))
        x = F.relu(self.fc_inner_3(x.flatten(1))).view(-1, 128, 8, 8)
        x = F.relu(bn[5](cv[6](x)))
        x = d(F.max_pool2d(F.relu(bn[6](cv[7](x))), 2))
        return _run_mlp(self.fc, x.flatten(1))


class Classifier5(nn.Module):
    """Classifier 5: 16 conv layers (4 stages of 4: 32, 64, 128, 256), dropout after every one."""

    def __init__(self, num_classes=200, in_chans=3):
        super().__init__()
        c = [in_chans] + [32] * 4 + [64] * 4 + [128] * 4 + [256] * 4
        self.conv = nn.ModuleList(_conv(c[i], c[i + 1]) for i in range(16))
        self.bn = nn.ModuleList(nn.BatchNorm2d(c[i + 1]) for i in range(16))
        self.drop = nn.Dropout2d()
        self.fc = _mlp([4096, 2048, 1024, 512, num_classes])

    def forward(self, x):
        check_input("seed000-clf5", SIZE, x)
        for i in range(16):
            y = F.relu(self.bn[i](self.conv[i](x)))
            x = self.drop(F.max_pool2d(y, 2) if i % 4 == 3 else y)
        return _run_mlp(self.fc, x.flatten(1))


class Classifier7(nn.Module):
    """Classifier 7: classifier 4's convs with adaptive-average-pooled side heads; logits x + x1 + x2.
    Global pooling frees it from a fixed input size."""

    def __init__(self, num_classes=200, in_chans=3):
        super().__init__()
        self.trunk = _EightConv(in_chans, (128, 256, 512, 1024))
        self.fcmid1 = nn.Linear(256, num_classes)
        self.fcmid2 = nn.Linear(512, num_classes)
        self.fc = _mlp([1024, 512, num_classes])

    def forward(self, x):
        x = self.trunk.stage(self.trunk.stage(x, 0), 1)
        x1 = self.fcmid1(F.adaptive_avg_pool2d(x, 1).flatten(1))
        x = self.trunk.stage(x, 2)
        x2 = self.fcmid2(F.adaptive_avg_pool2d(x, 1).flatten(1))
        x = self.trunk.stage(x, 3)
        return _run_mlp(self.fc, F.adaptive_avg_pool2d(x, 1).flatten(1)) + x1 + x2


F64 = dict(input_sizes=(SIZE,), family="seed000")


@register_model("seed000-clf1", **F64)
def seed000_clf1(num_classes=200, in_chans=3):
    return Classifier1(num_classes, in_chans)


@register_model("seed000-clf2", **F64)
def seed000_clf2(num_classes=200, in_chans=3):
    return Classifier2(num_classes, in_chans)


@register_model("seed000-clf3", **F64)
def seed000_clf3(num_classes=200, in_chans=3):
    return Classifier3(num_classes, in_chans)


@register_model("seed000-clf4", **F64)
def seed000_clf4(num_classes=200, in_chans=3):
    return Classifier1(num_classes, in_chans, (128, 256, 512, 1024), (8192, 4096, 2048, 1024, 512), "seed000-clf4")


@register_model("seed000-clf4_2", **F64)
def seed000_clf4_2(num_classes=200, in_chans=3):
    return Classifier4_2(num_classes, in_chans)


@register_model("seed000-clf5", **F64)
def seed000_clf5(num_classes=200, in_chans=3):
    return Classifier5(num_classes, in_chans)


@register_model("seed000-clf7", min_size=16, family="seed000")
def seed000_clf7(num_classes=200, in_chans=3):
    return Classifier7(num_classes, in_chans)
