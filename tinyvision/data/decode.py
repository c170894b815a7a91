"""Decode image files into uint8 (N, H, W, C) arrays, in parallel over the cores, chunk by chunk.

PIL decodes a 64x64 JPEG in about 65 us here, so process-level parallelism over chunks
is all the speed there is to win; torchvision.io.decode_jpeg was barely faster and
handles fewer formats (CMYK, palette PNG, GIF).
"""
from __future__ import annotations

import io
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from tinyvision.data.archive import Source
from tinyvision.errors import TinyVisionError

CHUNK = 2000  # images per task: big enough to amortize inter-process transfer
CHUNK_BYTES = 64 << 20  # ...but at most this many bytes of pixels per task, for large images

# File name endings taken for images, everywhere (folder readers, progress counts, predict).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _wh(size) -> tuple[int, int] | None:
    """PIL's (width, height) for a size given as N (square) or (height, width)."""
    if size is None:
        return None
    if isinstance(size, int):
        return size, size
    return int(size[1]), int(size[0])


def to_array(img: Image.Image, channels: int, size) -> np.ndarray:
    """Any PIL image (grayscale, RGBA, CMYK, palette) -> uint8 (H, W, channels); resized
    (bilinear) to size: N for N x N, or (height, width)."""
    mode = "L" if channels == 1 else "RGB"
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on white rather than letting convert() drop alpha onto black garbage.
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba)
    img = img.convert(mode)
    if size is not None and img.size != _wh(size):
        img = img.resize(_wh(size), Image.BILINEAR, reducing_gap=None)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def decode_bytes(data: bytes, channels: int = 3, size: int | None = None) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    img.load()  # forces a full decode so truncated files fail here, not later
    return to_array(img, channels, size)


@dataclass(frozen=True)
class MaskRule:
    """How a dataset's label masks read: class index per pixel, `ignore` where there is none."""

    num_classes: int
    palette: bool = False  # the masks are palette PNGs whose indices are the classes (PASCAL VOC)
    remap: tuple = ()  # (value, new value) pairs applied first, e.g. CamVid's void 11 -> 255
    ignore: int = 255


def decode_mask(data: bytes, rule: MaskRule, where: str, image_size: tuple[int, int], size) -> np.ndarray:
    """A label mask -> uint8 (H, W) of class indices or rule.ignore, checked against the classes
    and its image's size (PIL's (width, height)), resized with nearest neighbour."""
    img = Image.open(io.BytesIO(data))
    img.load()
    if rule.palette and (img.mode != "P" or img.getpalette() is None):
        raise TinyVisionError(f"{where}: not a palette PNG (mode {img.mode}): its values cannot be read as classes")
    if not rule.palette and img.mode not in ("L", "P", "I", "I;16"):
        raise TinyVisionError(f"{where}: a {img.mode} image is not a mask of class indices (expected greyscale)")
    if img.size != image_size:
        raise TinyVisionError(f"{where}: mask is {img.size[0]}x{img.size[1]}, its image {image_size[0]}x{image_size[1]}")
    m = np.asarray(img).astype(np.int64)
    for old, new in rule.remap:
        m[m == old] = new
    bad = (m != rule.ignore) & ((m < 0) | (m >= rule.num_classes))
    if bad.any():
        values = sorted(set(np.unique(m[bad]).tolist()))[:5]
        raise TinyVisionError(f"{where}: values {values} outside the {rule.num_classes} classes "
                              f"(0..{rule.num_classes - 1}, {rule.ignore} = ignore)")
    out = Image.fromarray(m.astype(np.uint8), "L")
    if size is not None and out.size != _wh(size):
        out = out.resize(_wh(size), Image.NEAREST)
    return np.asarray(out, dtype=np.uint8)


def _decode_chunk(args):
    source, names, channels, size, mask_names, rule = args
    out, masks, bad = [], [], []
    for i, name in enumerate(names):
        try:
            data = source.read(name)
            if mask_names is None:
                out.append(decode_bytes(data, channels, size))
                continue
            img = Image.open(io.BytesIO(data))
            img.load()
            mask = decode_mask(source.read(mask_names[i]), rule, source.display(mask_names[i]), img.size, size)
            out.append(to_array(img, channels, size))
            masks.append(mask)
        except TinyVisionError as e:
            bad.append((i, str(e)))
        except FileNotFoundError as e:
            bad.append((i, f"{source.display(name)}: missing ({e})"))
        except Exception as e:  # PIL raises many types for corrupt files
            bad.append((i, f"{source.display(name)}: not a readable image ({type(e).__name__}: {e})"))
    shapes = {a.shape for a in out}
    if len(shapes) > 1:
        return None, bad, shapes, names, None
    arr = np.stack(out) if out else None
    return arr, bad, shapes, names, (np.stack(masks) if masks else None)


@dataclass
class ImageFiles:
    """Image files a reader found for one split, decoded later, chunk by chunk, by whoever writes
    them (the cache streams them to disk): a reader never holds a split's pixels in memory."""

    source: Source
    names: list[str]
    channels: int = 3
    size: int | tuple | None = None  # resize every image to size x size, or to (height, width)
    skip_bad: bool = False
    workers: int | None = None
    progress: object = None  # a tqdm-like bar, advanced as chunks arrive
    masks: list[str] | None = None  # segmentation: each image's label mask, decoded with it
    rule: MaskRule | None = None

    def __len__(self) -> int:
        return len(self.names)

    def chunks(self) -> Iterator[tuple]:
        """(images of the readable files of the next CHUNK names, keep mask of those names, messages
        for the unreadable ones[, their masks, with `masks`]), in order. Decoded in parallel processes, at most 2 chunks per
        worker in flight, so memory stays bounded by the chunk size whatever the split's size.

        Without `skip_bad`, the first unreadable file raises TinyVisionError naming it; all images
        must share one size unless `size` resizes them."""
        workers = self.workers or min(os.cpu_count() or 1, 8)
        wh = _wh(self.size)
        step = CHUNK if wh is None else max(16, min(CHUNK, CHUNK_BYTES // (wh[0] * wh[1] * self.channels)))
        tasks = ((self.source, self.names[i : i + step], self.channels, self.size,
                  None if self.masks is None else self.masks[i : i + step], self.rule)
                 for i in range(0, len(self.names), step))
        pool = ProcessPoolExecutor(workers) if workers > 1 and len(self.names) > step else None
        shape = None
        try:
            results = _bounded_map(pool, _decode_chunk, tasks, 2 * workers) if pool else map(_decode_chunk, tasks)
            for arr, bad, shapes, chunk_names, masks in results:
                if bad and not self.skip_bad:
                    raise TinyVisionError(bad[0][1] + " (use --skip-bad to leave such files out)")
                if shape is not None:
                    shapes = shapes | {shape}
                if len(shapes) > 1:
                    raise TinyVisionError(f"{self.source.display(chunk_names[0])}: images differ in size "
                                          f"{sorted(shapes)}; pass --image-size N to resize every image to N x N")
                keep = np.ones(len(chunk_names), dtype=bool)
                keep[[i for i, _ in bad]] = False
                if arr is not None:
                    shape = arr.shape[1:]
                if self.progress is not None:
                    self.progress.update(len(chunk_names))
                arr = arr if arr is not None else np.zeros((0, 0, 0, self.channels), np.uint8)
                if self.masks is None:
                    yield arr, keep, [m for _, m in bad]
                else:
                    yield arr, keep, [m for _, m in bad], masks if masks is not None else np.zeros((0, 0, 0), np.uint8)
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)


def _bounded_map(pool, fn, tasks, window: int):
    """pool.map, in order, with at most `window` tasks submitted ahead of the consumer."""
    pending = deque()
    for task in tasks:
        pending.append(pool.submit(fn, task))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def decode_images(source: Source, names: list[str], *, channels: int = 3, size: int | None = None,
                  skip_bad: bool = False, workers: int | None = None,
                  progress=None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """All of `names` decoded into memory: (images, kept_mask, bad_messages), for small sets
    (tests, previews); caches stream ImageFiles.chunks() instead."""
    arrays, keeps, bad_msgs = [], [], []
    for arr, keep, bad in ImageFiles(source, names, channels, size, skip_bad, workers, progress).chunks():
        if len(arr):
            arrays.append(arr)
        keeps.append(keep)
        bad_msgs += bad
    if not arrays:
        raise TinyVisionError(f"{source.path}: no readable images")
    return np.concatenate(arrays), np.concatenate(keeps), bad_msgs


def resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    """Resize an in-memory uint8 (N, H, W, C) array to (N, size, size, C) with PIL's bilinear filter."""
    c = images.shape[-1]
    out = np.empty((len(images), size, size, c), dtype=np.uint8)
    for i, a in enumerate(images):
        img = Image.fromarray(a[..., 0] if c == 1 else a)
        out[i] = to_array(img, c, size)
    return out
