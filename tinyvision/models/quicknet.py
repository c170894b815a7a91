"""quicknet: small, fast all-conv nets for the per-dataset recipes (the demo's model and the
time-budgeted `*-fast` recipes).

Shaped after airbench's CIFAR-10 network (Keller Jordan; our own code): a stem, then stages of
conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU, global max-pool, a scaled linear head.
Each stage halves the side. The speed-record tricks are options, so the variants are data:

- `stem="whiten"`: a 2x2 conv whose weights are the data's patch whitening (PCA of 2x2 patches
  of the training images, with each filter and its negative), frozen; `init_from_data(x)` sets
  it, and fit calls it with normalized training images before the first step.
- `stem_stride=s`: a patchify stem (kernel s, stride s), the early downsampling that makes a
  64 px input cost what a 32 px one does.
- `bn_momentum`, `bn_affine_weight`: airbench's batch norm (statistics momentum 0.4 in torch's
  sense, scale fixed at 1, only the shift trained).
- `dirac=True`: every conv starts as the identity on its first input channels, plus the usual
  random init on the rest (airbench's init).
"""
from __future__ import annotations

import torch
from torch import nn

from tinyvision.models.registry import register_model


def _bn(c: int, momentum: float, affine_weight: bool) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c, momentum=momentum)
    bn.weight.requires_grad_(affine_weight)
    return bn


class QuickNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, widths=(32, 64, 128), stem: int = 24,
                 head_scale: float = 1 / 9, dropout: float = 0.0, stem_stride: int = 1, whiten: bool = False,
                 bn_momentum: float = 0.1, bn_affine_weight: bool = True, dirac: bool = False):
        super().__init__()
        bn = lambda c: _bn(c, bn_momentum, bn_affine_weight)  # noqa: E731
        if whiten:  # 2x2 patches of in_chans values; each whitening filter and its negative
            self.whiten = nn.Conv2d(in_chans, 2 * in_chans * 4, 2, padding=0, bias=True)
            self.whiten.weight.requires_grad_(False)
            layers, cin = [nn.GELU()], 2 * in_chans * 4
        else:
            self.whiten = None
            k = stem_stride if stem_stride > 1 else 3
            layers = [nn.Conv2d(in_chans, stem, k, stride=stem_stride, padding=0 if stem_stride > 1 else 1, bias=False),
                      bn(stem), nn.GELU()]
            cin = stem
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.MaxPool2d(2), bn(w), nn.GELU(),
                       nn.Conv2d(w, w, 3, padding=1, bias=False), bn(w), nn.GELU()]
            cin = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(cin, num_classes, bias=False)
        self.head_scale = head_scale  # airbench's trick: a small logit scale trains faster with a high lr
        if dirac:
            for m in self.features.modules():
                if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
                    nn.init.dirac_(m.weight.data[: m.in_channels])

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the whitening stem from normalized training images x (N, C, H, W); no-op without one."""
        if self.whiten is None:
            return
        c, (h, w) = x.shape[1], self.whiten.weight.shape[2:]
        cov, count = torch.zeros(c * h * w, c * h * w, dtype=torch.float64), 0
        for part in x.split(256):  # every patch is c*h*w values: 4x the images for a 2x2 stem, so by parts
            patches = part.float().unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c * h * w)
            cov += (patches.T @ patches).double()
            count += len(patches)
        cov = (cov / count).float()
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        filters = eigenvectors.T.reshape(-1, c, h, w) / torch.sqrt(eigenvalues.view(-1, 1, 1, 1) + eps)
        self.whiten.weight.copy_(torch.cat([filters, -filters]).to(self.whiten.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.whiten is not None:
            x = self.whiten(x)
        return self.head(self.drop(self.pool(self.features(x)).flatten(1))) * self.head_scale


# The variants: arguments, not code. *-cifar is airbench94's shape; *-tiny downsamples 64 px
# Tiny ImageNet 2x in its stem; *-mnist is the demo's net at half width.
VARIANTS = {
    "quicknet": {},
    "quicknet-wide": {"widths": (64, 128, 256), "stem": 32},
    "quicknet-mnist": {"widths": (16, 32, 64), "stem": 16},
    "quicknet-cifar": {"widths": (64, 256, 256), "whiten": True, "bn_momentum": 0.4, "bn_affine_weight": False,
                       "dirac": True},
    "quicknet-tiny": {"widths": (96, 192, 384), "stem": 48, "stem_stride": 2, "bn_momentum": 0.4,
                      "bn_affine_weight": False, "dirac": True},
}

for _name, _kw in VARIANTS.items():
    register_model(_name, min_size=16, family="quicknet")(
        lambda num_classes=10, in_chans=3, _kw=_kw, **kw: QuickNet(num_classes, in_chans, **{**_kw, **kw}))
