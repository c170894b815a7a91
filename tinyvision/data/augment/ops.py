"""The augmentation ops, each registered under the name policies use (`flip`, `crop:padding=4`, ...).

Every op takes a float batch (N, C, H, W) in [0, 1] and a torch.Generator and returns a batch
of the same kind, with its random parameters drawn per sample: `sample(x, g)` draws them,
`apply(x, params)` does the pixel work. RandAugment and TrivialAugment (auto.py) call `apply`
with parameters of their own, so each op's pixel code exists once. Adding an op is a class here
with `@register("name")`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tinyvision.data.augment.geometry import GeometricOp, eye, rotation, uniform
from tinyvision.errors import TinyVisionError

OPS: dict[str, type] = {}


def register(*names: str):
    """Class decorator: make the op available to policies under each of `names`."""

    def deco(cls):
        for n in names:
            if n in OPS:
                raise TinyVisionError(f"augmentation {n!r} is already registered")
            OPS[n] = cls
        return cls

    return deco


def gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    wts = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * wts).sum(1, keepdim=True)


def blend(a, b, f):
    """a * f + b * (1 - f), per-sample f, clamped to [0, 1]."""
    return (b + (a - b) * f.view(-1, 1, 1, 1)).clamp_(0, 1)


class PixelOp:
    """An op that changes values, not positions: `__call__` = apply(x, sample(x, g))."""

    def sample(self, x, g):
        raise NotImplementedError

    def apply(self, x, p):
        raise NotImplementedError

    def __call__(self, x, g):
        return self.apply(x, self.sample(x, g))


# ---------------------------------------------------------------- geometric ops
def _row_coins(rows: np.ndarray, seed: int) -> np.ndarray:
    """A fixed coin per (row, seed): bit 40 of a multiplicative hash, whose high bits are well
    mixed even for consecutive rows (uint64 arithmetic wraps, as a hash wants)."""
    salt = np.uint64(((seed + 1) * 0x632BE59BD9B4E019) % (1 << 64))
    h = (rows.astype(np.uint64) + salt) * np.uint64(0x2545F4914F6CDD1D)
    return ((h >> np.uint64(40)) & np.uint64(1)).astype(bool)


@register("flip")
@dataclass
class Flip(GeometricOp):
    """Mirror left-right with probability p. `alternate=1` is airbench's alternating flip: in
    epoch 0 each image is mirrored by a coin of its own (fixed by the seed), in every later epoch
    the other way from the epoch before, so each pair of epochs shows both sides of every image
    (airbench95's notes: random flip needs 17 epochs for what alternating does in 15). The loader
    names the rows and the epoch; a batch without them (a preview) gets a random flip."""

    p: float = 0.5
    alternate: int = 0

    def __post_init__(self):
        if self.alternate not in (0, 1):
            raise TypeError(f"flip: alternate must be 0 or 1 (got {self.alternate!r})")
        self._epoch, self._rows = (0, 0), None

    def set_epoch(self, seed: int, epoch: int) -> None:
        self._epoch = (seed, epoch)

    def set_rows(self, rows) -> None:
        self._rows = rows

    def sample(self, x, g):  # -1 (mirrored) or 1 per sample
        if self.alternate and self._rows is not None and len(self._rows) == len(x):
            seed, epoch = self._epoch
            mirrored = torch.from_numpy(_row_coins(np.asarray(self._rows), seed) ^ bool(epoch % 2)).to(x.device)
            return torch.where(mirrored, -1.0, 1.0)
        return torch.where(uniform(len(x), g, x) < self.p, -1.0, 1.0)

    def matrix_from(self, sign, h, w):
        m = eye(len(sign), sign.device)
        m[:, 0, 0] = sign
        return m


@register("crop")
@dataclass
class Crop(GeometricOp):
    """Pad by `padding` pixels and cut a random window of the original size: a random integer
    translation of up to `padding` pixels each way, exact (nearest sampling at pixel centres)."""

    padding: int = 4
    fill: str = "zeros"  # torchvision RandomCrop's default; or "reflection"

    @property
    def fill_mode(self):
        return "reflection" if self.fill.startswith("reflect") else "zeros"

    def sample(self, x, g):  # (N, 2) integer shifts in pixels, x then y
        p, n = int(self.padding), len(x)
        sx = torch.randint(-p, p + 1, (n,), generator=g, device=x.device)
        sy = torch.randint(-p, p + 1, (n,), generator=g, device=x.device)
        return torch.stack([sx, sy], 1).float()

    def matrix_from(self, s, h, w):
        m = eye(len(s), s.device)
        m[:, 0, 2], m[:, 1, 2] = s[:, 0] * 2.0 / w, s[:, 1] * 2.0 / h
        return m


@register("rotate")
@dataclass
class Rotate(GeometricOp):
    degrees: float = 15.0
    mode: str = "nearest"

    def sample(self, x, g):
        return uniform(len(x), g, x, -self.degrees, self.degrees)

    def matrix_from(self, deg, h, w):
        return rotation(deg, h, w)


@register("rotate-choice")
@dataclass
class RotateChoice(GeometricOp):
    """Rotate each image by one angle drawn from a list (seed report 000 used 0, 25, 45, 65, 90)."""

    angles: tuple = (0, 25, 45, 65, 90)
    mode: str = "nearest"

    def sample(self, x, g):
        angles = torch.tensor(self.angles, dtype=torch.float32, device=x.device)
        return angles[torch.randint(0, len(angles), (len(x),), generator=g, device=x.device)]

    def matrix_from(self, deg, h, w):
        return rotation(deg, h, w)


@register("translate")
@dataclass
class Translate(GeometricOp):
    """Shift by up to `fraction` of the size in each direction (zero fill)."""

    fraction: float = 0.1
    mode: str = "nearest"

    def sample(self, x, g):  # (N, 2) shifts in normalized units (2 = the whole side), x then y
        n, f = len(x), 2 * self.fraction
        return torch.stack([uniform(n, g, x, -f, f), uniform(n, g, x, -f, f)], 1)

    def matrix_from(self, t, h, w):
        m = eye(len(t), t.device)
        m[:, 0, 2], m[:, 1, 2] = t[:, 0], t[:, 1]
        return m


@register("shear")
@dataclass
class Shear(GeometricOp):
    """Shear by up to `x` (horizontal) and `y` (vertical) per unit of the other coordinate."""

    x: float = 0.3
    y: float = 0.0
    mode: str = "nearest"

    def sample(self, img, g):
        n = len(img)
        return torch.stack([uniform(n, g, img, -self.x, self.x), uniform(n, g, img, -self.y, self.y)], 1)

    def matrix_from(self, s, h, w):
        m = eye(len(s), s.device)
        m[:, 0, 1], m[:, 1, 0] = s[:, 0], s[:, 1]
        return m


@register("rrc", "random-resized-crop")
@dataclass
class RandomResizedCrop(GeometricOp):
    """torchvision's RandomResizedCrop, vectorized: 10 tries per sample, then the centre fallback."""

    scale: tuple = (0.08, 1.0)
    ratio: tuple = (3 / 4, 4 / 3)
    size: int | None = None  # output side; default: the input's
    mode: str = "bilinear"

    def sample(self, x, g):  # (N, 4): crop width and height as fractions of the image, centre in normalized units
        n, _, h, w = x.shape
        tries = 10
        area = uniform((n, tries), g, x, *self.scale) * h * w
        r = torch.exp(uniform((n, tries), g, x, math.log(self.ratio[0]), math.log(self.ratio[1])))
        cw, ch = torch.sqrt(area * r), torch.sqrt(area / r)
        ok = (cw <= w) & (ch <= h)
        first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1, device=x.device))
        in_r = min(max(w / h, self.ratio[0]), self.ratio[1])  # fallback: whole image, ratio clamped
        fw, fh = min(w, h * in_r), min(h, w / in_r)
        i, rows = first.clamp(min=0), torch.arange(n, device=x.device)
        cw = torch.where(first >= 0, cw[rows, i], torch.full((n,), float(fw), device=x.device))
        ch = torch.where(first >= 0, ch[rows, i], torch.full((n,), float(fh), device=x.device))
        cx = cw / 2 + uniform(n, g, x) * (w - cw)
        cy = ch / 2 + uniform(n, g, x) * (h - ch)
        return torch.stack([cw / w, ch / h, 2 * cx / w - 1, 2 * cy / h - 1], 1)

    def matrix_from(self, p, h, w):
        m = eye(len(p), p.device)
        m[:, 0, 0], m[:, 1, 1], m[:, 0, 2], m[:, 1, 2] = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
        return m


# ---------------------------------------------------------------- pixel ops
@dataclass
class _Factor(PixelOp):
    """A blend factor per sample in [1 - strength, 1 + strength]."""

    strength: float = 0.2

    def sample(self, x, g):
        return uniform(len(x), g, x, 1 - self.strength, 1 + self.strength)


@register("brightness")
@dataclass
class Brightness(_Factor):
    strength: float = 0.2

    def apply(self, x, f):  # a blend with black
        return (x * f.view(-1, 1, 1, 1)).clamp_(0, 1)


@register("contrast")
@dataclass
class Contrast(_Factor):
    """Blend with the image's mean grey: factor in [1 - s, 1 + s] (seed report 001 used 0.7 and 1.3)."""

    strength: float = 0.3

    def apply(self, x, f):
        return blend(x, gray(x).mean((1, 2, 3), keepdim=True), f)


@register("saturation")
@dataclass
class Saturation(_Factor):
    strength: float = 0.3

    def apply(self, x, f):
        return blend(x, gray(x), f)


@register("sharpness")
@dataclass
class Sharpness(_Factor):
    """Blend with a smoothed copy (PIL's 3x3 smoothing kernel): factors above 1 sharpen."""

    strength: float = 0.5

    def apply(self, x, f):
        k = torch.tensor([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=x.dtype, device=x.device) / 13
        c = x.shape[1]
        blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k.expand(c, 1, 3, 3), groups=c)
        return blend(x, blurred, f)


@register("posterize")
@dataclass
class Posterize(PixelOp):
    """Keep `bits` (drawn per sample from the range) of each 8-bit value."""

    bits: tuple = (4, 8)

    def sample(self, x, g):
        lo, hi = (self.bits, self.bits) if isinstance(self.bits, (int, float)) else self.bits
        return torch.randint(int(lo), int(hi) + 1, (len(x),), generator=g, device=x.device).float()

    def apply(self, x, bits):
        q = 2 ** (8 - bits.view(-1, 1, 1, 1))
        return torch.floor(x * 255 / q) * q / 255


@register("solarize")
@dataclass
class Solarize(PixelOp):
    """With probability p, invert the values at or above `threshold`."""

    threshold: float = 0.5
    p: float = 0.5

    def sample(self, x, g):  # a threshold above 1 inverts nothing
        return torch.where(uniform(len(x), g, x) < self.p, float(self.threshold), 2.0)

    def apply(self, x, thr):
        thr = thr.view(-1, 1, 1, 1)
        return torch.where(x >= thr, 1 - x, x)


@register("autocontrast")
@dataclass
class AutoContrast(PixelOp):
    """With probability p, stretch each channel to the full [0, 1] range."""

    p: float = 0.5

    def sample(self, x, g):
        return (uniform(len(x), g, x) < self.p).float()

    def apply(self, x, on):
        lo = x.amin((2, 3), keepdim=True)
        hi = x.amax((2, 3), keepdim=True)
        scale = torch.where(hi > lo, 1 / (hi - lo).clamp(min=1e-6), torch.ones_like(hi))
        stretched = torch.where(hi > lo, (x - lo) * scale, x).clamp(0, 1)
        return torch.where(on.view(-1, 1, 1, 1) > 0, stretched, x)


@register("switch-off")
@dataclass
class SwitchOff:
    """Switch off a random fraction `p` of the (channel, pixel) values: seed report 000's
    'switching off pixels'. per="sample" draws a mask per image and batch; per="epoch" one
    (C, H, W) mask for every image of an epoch, as the report did ("a 3-D tensor of 5% zeros was
    created at random every single epoch and then multiplied by the input images"). fill="zero"
    makes the values black; fill="mean" makes them the dataset mean, i.e. 0 in the normalized
    input the report multiplied."""

    p: float = 0.05
    per: str = "sample"  # sample | epoch
    fill: str = "zero"  # zero | mean

    def __post_init__(self):
        if self.per not in ("sample", "epoch") or self.fill not in ("zero", "mean"):
            raise TypeError(f"switch-off: per must be sample or epoch, fill zero or mean (got {self.per!r}, {self.fill!r})")
        self._epoch = (0, 0)  # (seed, epoch), set by the loader through Augment.set_epoch
        self._mask = None
        self._mean = None

    def bind_stats(self, mean, std) -> None:
        self._mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)

    def set_epoch(self, seed: int, epoch: int) -> None:
        if self._epoch != (seed, epoch):
            self._epoch, self._mask = (seed, epoch), None

    def _epoch_mask(self, x):
        shape = tuple(x.shape[1:])
        if self._mask is None or self._mask.shape != shape or self._mask.device != x.device:
            g = torch.Generator(device=x.device)
            g.manual_seed(int(np.random.SeedSequence([*self._epoch, 0x5F0FF]).generate_state(1)[0]))
            self._mask = torch.rand(shape, generator=g, device=x.device) >= self.p
        return self._mask

    def __call__(self, x, g):
        keep = self._epoch_mask(x) if self.per == "epoch" else torch.rand(x.shape, generator=g, device=x.device) >= self.p
        if self.fill == "zero":
            return x * keep
        mean = (self._mean if self._mean is not None else torch.zeros(1, x.shape[1], 1, 1)).to(x.device, x.dtype)
        return torch.where(keep, x, mean)


def _box_mask(n, h, w, y0, x0, y1, x1, device):
    ys = torch.arange(h, device=device).view(1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, w)
    return ((ys >= y0.view(-1, 1, 1)) & (ys < y1.view(-1, 1, 1)) & (xs >= x0.view(-1, 1, 1))
            & (xs < x1.view(-1, 1, 1)))[:, None]


@register("erase")
@dataclass
class Erase:
    """Random erasing (Zhong et al.): with probability p, fill a random box with `value`."""

    p: float = 0.5
    scale: tuple = (0.02, 0.33)
    ratio: tuple = (0.3, 3.3)
    value: float = 0.0

    def __call__(self, x, g):
        n, _, h, w = x.shape
        area = uniform(n, g, x, *self.scale) * h * w
        r = torch.exp(uniform(n, g, x, math.log(self.ratio[0]), math.log(self.ratio[1])))
        bh = torch.sqrt(area * r).clamp(max=h).floor()
        bw = torch.sqrt(area / r).clamp(max=w).floor()
        y0 = (uniform(n, g, x) * (h - bh + 1)).floor()
        x0 = (uniform(n, g, x) * (w - bw + 1)).floor()
        on = (uniform(n, g, x) < self.p).view(-1, 1, 1, 1)
        m = _box_mask(n, h, w, y0, x0, y0 + bh, x0 + bw, x.device) & on
        return x.masked_fill(m, self.value)


@register("cutout")
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


# ------------------------------------------------------- deterministic ops
@register("resize")
@dataclass
class Resize:
    size: int = 64

    def __call__(self, x, g=None):
        if x.shape[-1] == self.size and x.shape[-2] == self.size:
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
