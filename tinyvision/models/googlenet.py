"""GoogLeNet (torchvision's Inception v1) with its two auxiliary classifiers, small-image stem.

In training mode the model returns (logits, aux2, aux1) as torchvision does; the engine weights
the aux losses by 0.3. In eval mode it returns logits only. The small stem is a 3x3 stride-1 conv
without the first two max-pools, so 32-64 px inputs keep spatial extent into the inception blocks.
"""
from __future__ import annotations

from torch import nn
from torchvision.models.googlenet import BasicConv2d, GoogLeNet as _TVGoogLeNet

from tinyvision.models.registry import register_model


class GoogLeNet(_TVGoogLeNet):
    def __init__(self, num_classes=1000, in_chans=3, stem="small", aux_logits=True):
        super().__init__(num_classes=num_classes, aux_logits=aux_logits, transform_input=False, init_weights=True)
        if stem == "small":
            self.conv1 = BasicConv2d(in_chans, 64, kernel_size=3, stride=1, padding=1)
            self.maxpool1 = nn.Identity()
            self.maxpool2 = nn.Identity()
        elif in_chans != 3:
            self.conv1 = BasicConv2d(in_chans, 64, kernel_size=7, stride=2, padding=3)

    def forward(self, x):
        x = self._transform_input(x)
        x, aux1, aux2 = self._forward(x)
        if self.training and self.aux_logits:
            return x, aux2, aux1
        return x


@register_model("googlenet", min_size=28, family="googlenet")
def googlenet(num_classes=1000, in_chans=3, **kw):
    return GoogLeNet(num_classes, in_chans, **kw)
