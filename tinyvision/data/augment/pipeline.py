"""The chunked pipeline: uint8 batch -> ops -> normalized float model input, in one pass per stage."""
from __future__ import annotations

import torch

from tinyvision.data.augment.geometry import GeometricOp, Geometry, resample
from tinyvision.data.augment.ops import Resize
from tinyvision.data.augment.policy import parse_policy


def group_geometry(ops: list) -> list:
    """Merge each run of consecutive geometric ops into one Geometry stage."""
    out = []
    for op in ops:
        if isinstance(op, GeometricOp):
            if out and isinstance(out[-1], Geometry):
                out[-1] = Geometry(out[-1].ops + [op])
            else:
                out.append(Geometry([op]))
        else:
            out.append(op)
    return out


_LINEAR = (Geometry, Resize)  # stages that commute with scaling pixel values

# Pixels per pass on CPU. A whole 256 x 3 x 64 x 64 batch is 12.6 MB per float intermediate and
# every pass streams it through memory; 32 images of 64 x 64 (1.5 MB) at a time stay in cache.
# Tiny ImageNet, flip + crop + rotate, batch 256, in batches/s: 425 in chunks of 32 images,
# 418 of 24, 404 of 48, 382 of 64, 370 of 16, 220 for the whole batch at once; smaller chunks
# pay Python's per-op overhead more often.
CPU_CHUNK_PIXELS = 32 * 64 * 64


class Augment:
    """uint8 NCHW batch -> float model input: ops on [0, 1] values, then normalization.

    Geometric stages and resizing are linear in the pixel values, so while only those have
    run the batch stays on the 0..255 scale and the division by 255 is folded into the
    final normalization: one pass over the batch fewer. On CPU the batch goes through in
    chunks of CPU_CHUNK_PIXELS pixels; geometric parameters are drawn for the whole batch
    first, other ops' per chunk in turn from the same generator, so a batch is still a
    function of (images, generator) alone."""

    def __init__(self, ops, mean, std, size: int | None = None, channels_last: bool = False, ignore: int = 255):
        self.ops = list(ops)
        self.ignore = ignore  # the mask value for pixels without a class (segmentation)
        self.stages = group_geometry(self.ops) + ([Resize(size)] if size else [])
        self.size = size
        self.mean, self.std = tuple(mean), tuple(std)
        self.channels_last = channels_last
        for op in self.ops:  # ops that work relative to the normalization (switch-off's fill=mean)
            if hasattr(op, "bind_stats"):
                op.bind_stats(self.mean, self.std)

    def resize_to(self, size: int | None) -> None:
        """From the next batch on, output `size` x `size` images (progressive resizing; masks too).
        A Resize stage after the policy's own: one more pass over a batch that is then smaller."""
        stages = self.stages[:-1] if self.size else self.stages
        self.stages = stages + ([Resize(size)] if size else [])
        self.size = size

    def set_epoch(self, seed: int, epoch: int) -> None:
        """The loader says which epoch is starting (ops with one draw per epoch use it)."""
        for op in self.ops:
            if hasattr(op, "set_epoch"):
                op.set_epoch(seed, epoch)

    def set_rows(self, rows) -> None:
        """The loader says which rows of the split the next batch holds (ops that follow each
        image across epochs use it); the next call uses them, then forgets them."""
        for op in self.ops:
            if hasattr(op, "set_rows"):
                op.set_rows(rows)

    def __call__(self, x: torch.Tensor, g: torch.Generator | None = None, mask: torch.Tensor | None = None):
        """The model input; with `mask` (N, H, W) class indices, (input, mask): the mask moves with
        the image through every geometric stage and resize (nearest, `ignore` where it leaves the
        image) and is untouched by the pixel ops."""
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        inv = 1.0 / torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        bias = -torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1) * inv
        n = len(x)
        step = max(1, CPU_CHUNK_PIXELS // (x.shape[2] * x.shape[3])) if x.device.type == "cpu" else max(n, 1)
        # geometric parameters are drawn for the whole batch at once: a few dozen small ops
        # that would otherwise be paid again for every chunk
        drawn = [s.matrices(x, g) if isinstance(s, Geometry) else None for s in self.stages]
        self.set_rows(None)
        out = None
        for i in range(0, max(n, 1), step):  # an empty batch makes one empty pass, for its shape
            y, scale = self._stages(x[i : i + step], g, [d if d is None else d[i : i + step] for d in drawn])
            if out is None:
                out = torch.empty((n, *y.shape[1:]), device=y.device, memory_format=fmt)
            dst = out[i : i + len(y)]
            # (y / scale - mean) / std, written straight into the output; except on CPU when
            # the layouts differ: broadcasting (1, C, 1, 1) over a channels_last tensor is 5x
            # slower there, so that case normalizes in NCHW (y is ours to change), then copies.
            if y.device.type != "cpu" or (dst.is_contiguous() and y.is_contiguous()):
                torch.mul(y, inv / scale, out=dst).add_(bias)
            else:
                dst.copy_(y.contiguous().mul_(inv / scale).add_(bias))
        if mask is None:
            return out
        return out, self._move_mask(mask, drawn)

    def _move_mask(self, mask: torch.Tensor, drawn: list) -> torch.Tensor:
        """The geometric stages' matrices and the resize, applied to a mask: nearest sampling of
        (class + 1), so that pixels from outside the image (0) become `ignore`."""
        m = mask[:, None].float() + 1
        for stage, mats in zip(self.stages, drawn):
            if isinstance(stage, Geometry):
                m = resample(m, mats, stage.size, "nearest", "zeros")
            elif isinstance(stage, Resize) and m.shape[-1] != stage.size:
                m = torch.nn.functional.interpolate(m, size=(stage.size, stage.size), mode="nearest")
        m = m[:, 0].long() - 1
        return torch.where(m < 0, torch.full_like(m, self.ignore), m)

    def _stages(self, x: torch.Tensor, g, drawn: list) -> tuple[torch.Tensor, float]:
        """The stages on one chunk: a float tensor of our own, and the scale it is still on."""
        # grid_sample reads any layout and writes NCHW, so before a geometric stage the cache's
        # NHWC bytes are converted as they lie (0.04 ms for 128 images against 0.22 ms when
        # permuting to NCHW, and grid_sample itself is faster on NHWC input: 405 batches/s
        # against 366 with the whole pipeline NCHW); elementwise stages want NCHW and get it.
        first_geometric = bool(self.stages) and isinstance(self.stages[0], Geometry)
        fmt = torch.preserve_format if first_geometric else torch.contiguous_format
        x = x.to(dtype=torch.float32, memory_format=fmt, copy=True)  # always ours: stages may work in place
        scale = 255.0  # x holds pixel values times 1 / scale... until the first non-linear stage
        for stage, m in zip(self.stages, drawn):
            if scale != 1.0 and not isinstance(stage, _LINEAR):
                x = x.div_(scale)
                scale = 1.0
            x = stage(x, g) if m is None else stage.apply(x, m)
        return x, scale

    def __repr__(self):
        return f"Augment({self.stages}, mean={self.mean}, std={self.std})"


def build_augment(policy, mean, std, image_size: int = 32, size: int | None = None, channels_last=False,
                  ignore: int = 255) -> Augment:
    """The policy (see policy.py) as an Augment that also resizes to `size` and normalizes
    (and moves segmentation masks along, `ignore` where they leave the image)."""
    return Augment(parse_policy(policy, image_size), mean, std, size, channels_last, ignore)
