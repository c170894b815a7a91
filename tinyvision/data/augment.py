"""Augmentation of whole batches on the batch's device, with per-sample random parameters.

Every op takes a float batch (N, C, H, W) in [0, 1] and a torch.Generator and returns a batch
of the same kind. Geometric ops draw one affine matrix per sample and call grid_sample
once; crops with padding gather exact integer shifts. Randomness comes only from the
generator, which the loader seeds from (seed, epoch, batch), so a batch is reproducible.

    policy = build_augment("flip,crop:padding=4,rotate:degrees=15", mean, std)
    x = policy(x_uint8, generator)          # float, normalized
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tinyvision.errors import TinyVisionError


def _rand(n, g, x, lo=0.0, hi=1.0):
    return torch.rand(n, generator=g, device=x.device) * (hi - lo) + lo


def _affine(x: torch.Tensor, theta: torch.Tensor, size=None) -> torch.Tensor:
    """Resample every image through its own 2x3 matrix (output coords -> input coords, normalized)."""
    n, c, h, w = x.shape
    oh, ow = size or (h, w)
    grid = F.affine_grid(theta.to(x.dtype), [n, c, oh, ow], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _rotation_theta(deg: torch.Tensor, h: int, w: int) -> torch.Tensor:
    a = deg * math.pi / 180
    cos, sin = torch.cos(a), torch.sin(a)
    z = torch.zeros_like(a)
    return torch.stack([torch.stack([cos, -sin * h / w, z], 1), torch.stack([sin * w / h, cos, z], 1)], 1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    wts = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * wts).sum(1, keepdim=True)


def _blend(a, b, f):
    """a * f + b * (1 - f), per-sample f, clamped to [0, 1]."""
    return (b + (a - b) * f.view(-1, 1, 1, 1)).clamp_(0, 1)


# ---------------------------------------------------------------- ops
@dataclass
class Flip:
    p: float = 0.5

    def __call__(self, x, g):
        m = (_rand(len(x), g, x) < self.p).view(-1, 1, 1, 1)
        return torch.where(m, x.flip(3), x)


@dataclass
class Crop:
    """Pad by `padding` pixels and cut a random window of the original size: integer translation."""

    padding: int = 4
    mode: str = "reflect"  # or "constant" (zeros)

    def __call__(self, x, g):
        p = int(self.padding)
        if p <= 0:
            return x
        n, c, h, w = x.shape
        xp = F.pad(x, (p, p, p, p), mode=self.mode)
        dy = torch.randint(0, 2 * p + 1, (n,), generator=g, device=x.device)
        dx = torch.randint(0, 2 * p + 1, (n,), generator=g, device=x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(n, c, h, w + 2 * p)
        x = xp.gather(2, rows)
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :].expand(n, c, h, w)
        return x.gather(3, cols)


@dataclass
class Rotate:
    degrees: float = 15.0

    def __call__(self, x, g):
        _, _, h, w = x.shape
        return _affine(x, _rotation_theta(_rand(len(x), g, x, -self.degrees, self.degrees), h, w))


@dataclass
class RotateChoice:
    """Rotate each image by one angle drawn from a list (seed report 000 used 0, 25, 45, 65, 90)."""

    angles: tuple = (0, 25, 45, 65, 90)

    def __call__(self, x, g):
        _, _, h, w = x.shape
        angles = torch.tensor(self.angles, dtype=torch.float32, device=x.device)
        pick = torch.randint(0, len(angles), (len(x),), generator=g, device=x.device)
        return _affine(x, _rotation_theta(angles[pick], h, w))


@dataclass
class Translate:
    """Shift by up to `fraction` of the size in each direction (sub-pixel, zero fill)."""

    fraction: float = 0.1

    def __call__(self, x, g):
        n = len(x)
        theta = torch.zeros(n, 2, 3, device=x.device)
        theta[:, 0, 0] = theta[:, 1, 1] = 1
        theta[:, 0, 2] = _rand(n, g, x, -2 * self.fraction, 2 * self.fraction)
        theta[:, 1, 2] = _rand(n, g, x, -2 * self.fraction, 2 * self.fraction)
        return _affine(x, theta)


@dataclass
class RandomResizedCrop:
    """torchvision's RandomResizedCrop, vectorized: 10 tries per sample, then the centre fallback."""

    scale: tuple = (0.08, 1.0)
    ratio: tuple = (3 / 4, 4 / 3)
    size: int | None = None  # output side; default: the input's

    def __call__(self, x, g):
        n, _, h, w = x.shape
        tries = 10
        area = _rand((n, tries), g, x, *self.scale) * h * w
        logr = _rand((n, tries), g, x, math.log(self.ratio[0]), math.log(self.ratio[1]))
        r = torch.exp(logr)
        cw, ch = torch.sqrt(area * r), torch.sqrt(area / r)
        ok = (cw <= w) & (ch <= h)
        first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1, device=x.device))
        # fallback: whole image, ratio clamped into range
        in_r = min(max(w / h, self.ratio[0]), self.ratio[1])
        fw, fh = min(w, h * in_r), min(h, w / in_r)
        i = first.clamp(min=0)
        cw = torch.where(first >= 0, cw[torch.arange(n), i], torch.full((n,), float(fw), device=x.device))
        ch = torch.where(first >= 0, ch[torch.arange(n), i], torch.full((n,), float(fh), device=x.device))
        cx = cw / 2 + _rand(n, g, x) * (w - cw)
        cy = ch / 2 + _rand(n, g, x) * (h - ch)
        theta = torch.zeros(n, 2, 3, device=x.device)
        theta[:, 0, 0], theta[:, 1, 1] = cw / w, ch / h
        theta[:, 0, 2], theta[:, 1, 2] = 2 * cx / w - 1, 2 * cy / h - 1
        s = self.size
        return _affine(x, theta, (s, s) if s else None)


@dataclass
class Brightness:
    strength: float = 0.2

    def __call__(self, x, g):
        f = _rand(len(x), g, x, 1 - self.strength, 1 + self.strength)
        return (x * f.view(-1, 1, 1, 1)).clamp_(0, 1)


@dataclass
class Contrast:
    """Blend with the image's mean grey: factor in [1 - s, 1 + s] (seed report 001 used 0.7 and 1.3)."""

    strength: float = 0.3

    def __call__(self, x, g):
        f = _rand(len(x), g, x, 1 - self.strength, 1 + self.strength)
        return _blend(x, _gray(x).mean((1, 2, 3), keepdim=True), f)


@dataclass
class Saturation:
    strength: float = 0.3

    def __call__(self, x, g):
        f = _rand(len(x), g, x, 1 - self.strength, 1 + self.strength)
        return _blend(x, _gray(x), f)


@dataclass
class SwitchOff:
    """Zero a random fraction `p` of the (channel, pixel) values: seed report 000's 'switching off pixels'."""

    p: float = 0.05

    def __call__(self, x, g):
        return x * (torch.rand(x.shape, generator=g, device=x.device) >= self.p)


def _box_mask(n, h, w, y0, x0, y1, x1, device):
    ys = torch.arange(h, device=device).view(1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, w)
    return ((ys >= y0.view(-1, 1, 1)) & (ys < y1.view(-1, 1, 1)) & (xs >= x0.view(-1, 1, 1)) & (xs < x1.view(-1, 1, 1)))[:, None]


@dataclass
class Erase:
    """Random erasing (Zhong et al.): with probability p, fill a random box with `value`."""

    p: float = 0.5
    scale: tuple = (0.02, 0.33)
    ratio: tuple = (0.3, 3.3)
    value: float = 0.0

    def __call__(self, x, g):
        n, _, h, w = x.shape
        area = _rand(n, g, x, *self.scale) * h * w
        r = torch.exp(_rand(n, g, x, math.log(self.ratio[0]), math.log(self.ratio[1])))
        bh = torch.sqrt(area * r).clamp(max=h).floor()
        bw = torch.sqrt(area / r).clamp(max=w).floor()
        y0 = (_rand(n, g, x) * (h - bh + 1)).floor()
        x0 = (_rand(n, g, x) * (w - bw + 1)).floor()
        on = (_rand(n, g, x) < self.p).view(-1, 1, 1, 1)
        m = _box_mask(n, h, w, y0, x0, y0 + bh, x0 + bw, x.device) & on
        return x.masked_fill(m, self.value)


@dataclass
class Cutout:
    """DeVries & Taylor's cutout: a `size` x `size` square at a random centre (may overhang)."""

    size: int = 16

    def __call__(self, x, g):
        n, _, h, w = x.shape
        cy = torch.randint(0, h, (n,), generator=g, device=x.device)
        cx = torch.randint(0, w, (n,), generator=g, device=x.device)
        s = self.size // 2
        return x.masked_fill(_box_mask(n, h, w, cy - s, cx - s, cy - s + self.size, cx - s + self.size, x.device), 0.0)


# ------------------------------------------------- TrivialAugment / RandAugment
# Magnitude ranges of torchvision's RandAugment; m in [0, 1] scales from none to the maximum.
_GEOM = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
_OPS = ("identity", "brightness", "color", "contrast", "sharpness", "posterize", "solarize", "autocontrast") + _GEOM


def _signed(m, g, x):
    return m * torch.where(_rand(len(m), g, x) < 0.5, -1.0, 1.0)


def _apply_op(name: str, x: torch.Tensor, m: torch.Tensor, g) -> torch.Tensor:
    if name == "identity":
        return x
    if name in ("brightness", "color", "contrast", "sharpness"):
        f = 1 + _signed(0.9 * m, g, x)
        if name == "brightness":
            return _blend(x, torch.zeros_like(x), f)
        if name == "color":
            return _blend(x, _gray(x), f)
        if name == "contrast":
            return _blend(x, _gray(x).mean((1, 2, 3), keepdim=True), f)
        k = torch.tensor([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=x.dtype, device=x.device) / 13
        c = x.shape[1]
        blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k.expand(c, 1, 3, 3), groups=c)
        return _blend(x, blurred, f)
    if name == "posterize":
        bits = (8 - (m * 4).round()).view(-1, 1, 1, 1)
        q = 2 ** (8 - bits)
        return torch.floor(x * 255 / q) * q / 255
    if name == "solarize":
        thr = (1 - m).view(-1, 1, 1, 1)
        return torch.where(x >= thr, 1 - x, x)
    if name == "autocontrast":
        lo = x.amin((2, 3), keepdim=True)
        hi = x.amax((2, 3), keepdim=True)
        scale = torch.where(hi > lo, 1 / (hi - lo).clamp(min=1e-6), torch.ones_like(hi))
        return torch.where(hi > lo, (x - lo) * scale, x).clamp(0, 1)
    n, _, h, w = x.shape
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    s = _signed(m, g, x)
    if name == "rotate":
        theta = _rotation_theta(30 * s, h, w)
    elif name == "shear_x":
        theta[:, 0, 1] = 0.3 * s
    elif name == "shear_y":
        theta[:, 1, 0] = 0.3 * s
    elif name == "translate_x":
        theta[:, 0, 2] = 2 * 0.45 * s
    elif name == "translate_y":
        theta[:, 1, 2] = 2 * 0.45 * s
    return _affine(x, theta)


def _per_sample_ops(x, g, magnitude: torch.Tensor) -> torch.Tensor:
    pick = torch.randint(0, len(_OPS), (len(x),), generator=g, device=x.device)
    out = x.clone()
    for i, name in enumerate(_OPS):
        sel = (pick == i).nonzero().flatten()
        if len(sel) and name != "identity":
            out[sel] = _apply_op(name, x[sel], magnitude[sel], g)
    return out


@dataclass
class TrivialAugment:
    """Müller & Hutter 2021: one op per image, uniform random magnitude. (No 'equalize': a
    per-image histogram has no cheap batched form; it is left out.)"""

    def __call__(self, x, g):
        return _per_sample_ops(x, g, _rand(len(x), g, x))


@dataclass
class RandAugment:
    """Cubuk et al. 2020: `num_ops` random ops per image at a fixed magnitude out of 30 bins."""

    num_ops: int = 2
    magnitude: float = 9

    def __call__(self, x, g):
        m = torch.full((len(x),), self.magnitude / 30, device=x.device)
        for _ in range(int(self.num_ops)):
            x = _per_sample_ops(x, g, m)
        return x


# ------------------------------------------------------- deterministic ops
@dataclass
class Resize:
    size: int = 64

    def __call__(self, x, g=None):
        if x.shape[-1] == self.size and x.shape[-2] == self.size:
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)


@dataclass
class Normalize:
    mean: tuple = (0.5,)
    std: tuple = (0.5,)

    def __call__(self, x, g=None):
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        return (x - mean) / std


OPS = {
    "flip": Flip, "crop": Crop, "rotate": Rotate, "rotate-choice": RotateChoice, "translate": Translate,
    "rrc": RandomResizedCrop, "random-resized-crop": RandomResizedCrop, "brightness": Brightness,
    "contrast": Contrast, "saturation": Saturation, "switch-off": SwitchOff, "erase": Erase, "cutout": Cutout,
    "trivialaugment": TrivialAugment, "randaugment": RandAugment, "resize": Resize,
}

# Named policies. Padding and sizes scale with the image: '{pad}' is size/8, as 4 px at 32 px.
PRESETS = {
    "none": "",
    "flip": "flip",
    "standard": "crop:padding={pad},flip",
    "seed000-switchoff": "switch-off:p=0.05",
    "seed000-rotflip": "rotate-choice,flip",
    "seed001": "flip,translate:fraction=0.1,rotate:degrees=15,contrast:strength=0.3",
    "seed002": "rrc,flip,rotate:degrees=18",
    "trivialaugment": "crop:padding={pad},flip,trivialaugment",
    "randaugment": "crop:padding={pad},flip,randaugment",
    "strong": "crop:padding={pad},flip,trivialaugment,erase:p=0.25",
    "benchmark": "flip,crop:padding={pad},rotate:degrees=15",
}


def _parse_value(s: str):
    if "~" in s:
        return tuple(_parse_value(v) for v in s.split("~"))
    for cast in (int, float):
        try:
            return cast(s)
        except ValueError:
            pass
    return s


def parse_policy(policy, image_size: int = 32) -> list:
    """A preset name, a 'op:key=value,op' string, or a list of {'name': op, **kwargs} dicts -> ops."""
    if isinstance(policy, str):
        text = PRESETS.get(policy, policy).format(pad=max(1, image_size // 8))
        items = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, *kvs = part.split(":")
            kw = {}
            for kv in kvs:
                if "=" not in kv:
                    raise TinyVisionError(f"augmentation {part!r}: expected key=value, got {kv!r}")
                k, v = kv.split("=", 1)
                kw[k.strip()] = _parse_value(v.strip())
            items.append({"name": name.strip(), **kw})
    else:
        items = list(policy or [])
    ops = []
    for item in items:
        item = dict(item)
        name = item.pop("name", None)
        if name not in OPS:
            raise TinyVisionError(
                f"unknown augmentation {name!r}; ops: {', '.join(OPS)}; presets: {', '.join(PRESETS)}")
        try:
            ops.append(OPS[name](**item))
        except TypeError as e:
            raise TinyVisionError(f"augmentation {name!r}: {e}") from e
    return ops


class Augment:
    """uint8 NCHW batch -> float model input: ops on [0, 1] values, then normalization."""

    def __init__(self, ops, mean, std, size: int | None = None, channels_last: bool = False):
        self.ops = list(ops)
        self.post = ([Resize(size)] if size else []) + [Normalize(tuple(mean), tuple(std))]
        self.channels_last = channels_last

    def __call__(self, x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        x = x.to(dtype=torch.float32, memory_format=fmt).div_(255)
        for op in self.ops:
            x = op(x, g)
        for op in self.post:
            x = op(x)
        return x.contiguous(memory_format=fmt)

    def __repr__(self):
        return f"Augment({self.ops + self.post})"


def build_augment(policy, mean, std, image_size: int = 32, size: int | None = None, channels_last=False) -> Augment:
    return Augment(parse_policy(policy, image_size), mean, std, size, channels_last)


# ------------------------------------------------------- batch mixing (engine side)
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
