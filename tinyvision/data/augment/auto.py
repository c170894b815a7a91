"""TrivialAugment and RandAugment over whole batches: a random op per image, each image's
magnitude its own, the pixel work done by the ops' own `apply` (ops.py).

The magnitude ranges are torchvision's RandAugment space; m in [0, 1] scales from no change to
the maximum, and signed ops flip the sign with probability 1/2. No 'equalize': a per-image
histogram has no cheap batched form, so it is left out.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from tinyvision.data.augment.geometry import uniform
from tinyvision.data.augment.ops import (AutoContrast, Brightness, Contrast, Posterize, Rotate, Saturation, Sharpness,
                                        Shear, Solarize, Translate, register)


def _xy(a, b):
    return torch.stack([a, b], 1)


# name: (op, signed, magnitude -> the op's per-sample parameters)
SPACE = {
    "identity": (None, False, None),
    "brightness": (Brightness(), True, lambda m: 1 + 0.9 * m),
    "color": (Saturation(), True, lambda m: 1 + 0.9 * m),
    "contrast": (Contrast(), True, lambda m: 1 + 0.9 * m),
    "sharpness": (Sharpness(), True, lambda m: 1 + 0.9 * m),
    "posterize": (Posterize(), False, lambda m: 8 - (m * 4).round()),
    "solarize": (Solarize(), False, lambda m: 1 - m),
    "autocontrast": (AutoContrast(), False, lambda m: torch.ones_like(m)),
    "rotate": (Rotate(), True, lambda m: 30 * m),
    "shear_x": (Shear(), True, lambda m: _xy(0.3 * m, 0 * m)),
    "shear_y": (Shear(), True, lambda m: _xy(0 * m, 0.3 * m)),
    "translate_x": (Translate(), True, lambda m: _xy(0.9 * m, 0 * m)),  # 0.45 of the side, normalized
    "translate_y": (Translate(), True, lambda m: _xy(0 * m, 0.9 * m)),
}
_NAMES = tuple(SPACE)


def random_ops(x: torch.Tensor, g, magnitude: torch.Tensor) -> torch.Tensor:
    """One op of SPACE per image, at that image's magnitude."""
    pick = torch.randint(0, len(_NAMES), (len(x),), generator=g, device=x.device)
    out = x.clone()
    for i, name in enumerate(_NAMES):
        op, signed, params = SPACE[name]
        sel = (pick == i).nonzero().flatten()
        if op is None or not len(sel):
            continue
        m = magnitude[sel]
        if signed:
            m = m * torch.where(uniform(len(m), g, x) < 0.5, -1.0, 1.0)
        out[sel] = op.apply(x[sel], params(m))
    return out


@register("trivialaugment")
@dataclass
class TrivialAugment:
    """Müller & Hutter 2021: one op per image, uniform random magnitude."""

    def __call__(self, x, g):
        return random_ops(x, g, uniform(len(x), g, x))


@register("randaugment")
@dataclass
class RandAugment:
    """Cubuk et al. 2020: `num_ops` random ops per image at a fixed magnitude out of 30 bins."""

    num_ops: int = 2
    magnitude: float = 9

    def __call__(self, x, g):
        m = torch.full((len(x),), self.magnitude / 30, device=x.device)
        for _ in range(int(self.num_ops)):
            x = random_ops(x, g, m)
        return x
