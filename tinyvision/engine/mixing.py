"""Mixup and CutMix over a whole batch, with label smoothing folded into the soft targets."""
from __future__ import annotations

import math

import numpy as np
import torch


def mix_batch(x, y, num_classes: int, g, mixup_alpha=0.0, cutmix_alpha=0.0, switch_prob=0.5, smoothing=0.0):
    """Mixup / CutMix over a whole batch, paired with the reversed batch (as timm does).

    Returns (x_mixed, soft_targets). With both alphas 0 it only applies label smoothing."""
    off = smoothing / num_classes
    onehot = torch.full((len(y), num_classes), off, device=x.device).scatter_(1, y.view(-1, 1), 1 - smoothing + off)
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        return x, onehot
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g, device=g.device).item())
    rng = np.random.default_rng(seed)
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < switch_prob)
    lam = float(rng.beta(cutmix_alpha, cutmix_alpha) if use_cutmix else rng.beta(mixup_alpha, mixup_alpha))
    if use_cutmix:
        _, _, h, w = x.shape
        cut = math.sqrt(1 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x.flip(0)[:, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        x = x * lam + x.flip(0) * (1 - lam)
    return x, onehot * lam + onehot.flip(0) * (1 - lam)
