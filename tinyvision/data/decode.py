"""Decode image files into one uint8 (N, H, W, C) array, in parallel over the cores.

PIL decodes a 64x64 JPEG in about 65 us here, so process-level parallelism over chunks
is all the speed there is to win; torchvision.io.decode_jpeg was barely faster and
handles fewer formats (CMYK, palette PNG, GIF).
"""
from __future__ import annotations

import io
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image

from tinyvision.data.archive import Source
from tinyvision.errors import TinyVisionError

CHUNK = 2000  # images per task: big enough to amortize inter-process transfer

# File name endings taken for images, everywhere (folder readers, progress counts, predict).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def to_array(img: Image.Image, channels: int, size: int | None) -> np.ndarray:
    """Any PIL image (grayscale, RGBA, CMYK, palette) -> uint8 (H, W, channels)."""
    mode = "L" if channels == 1 else "RGB"
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on white rather than letting convert() drop alpha onto black garbage.
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba)
    img = img.convert(mode)
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR, reducing_gap=None)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def decode_bytes(data: bytes, channels: int = 3, size: int | None = None) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    img.load()  # forces a full decode so truncated files fail here, not later
    return to_array(img, channels, size)


def _decode_chunk(args):
    source, names, channels, size = args
    out, bad = [], []
    for i, name in enumerate(names):
        try:
            out.append(decode_bytes(source.read(name), channels, size))
        except TinyVisionError as e:
            bad.append((i, str(e)))
        except Exception as e:  # PIL raises many types for corrupt files
            bad.append((i, f"{source.display(name)}: not a readable image ({type(e).__name__}: {e})"))
    shapes = {a.shape for a in out}
    if len(shapes) > 1:
        return None, bad, shapes, names
    arr = np.stack(out) if out else None
    return arr, bad, shapes, names


def decode_images(
    source: Source,
    names: list[str],
    *,
    channels: int = 3,
    size: int | None = None,
    skip_bad: bool = False,
    workers: int | None = None,
    progress=None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode `names` from `source`. Returns (images, kept_mask, bad_messages).

    Without `skip_bad`, the first unreadable file raises TinyVisionError naming it.
    All images must share one size unless `size` resizes them.
    """
    workers = workers or min(os.cpu_count() or 1, 8)
    chunks = [(source, names[i : i + CHUNK], channels, size) for i in range(0, len(names), CHUNK)]
    keep = np.ones(len(names), dtype=bool)
    arrays, bad_msgs = [], []
    pool = ProcessPoolExecutor(workers) if workers > 1 and len(chunks) > 1 else None
    try:
        results = pool.map(_decode_chunk, chunks) if pool else map(_decode_chunk, chunks)
        offset = 0
        for arr, bad, shapes, chunk_names in results:
            if bad and not skip_bad:
                raise TinyVisionError(bad[0][1] + " (use --skip-bad to leave such files out)")
            for i, msg in bad:
                keep[offset + i] = False
                bad_msgs.append(msg)
            if arrays:
                shapes = shapes | {arrays[0].shape[1:]}
            if len(shapes) > 1:
                raise TinyVisionError(
                    f"{source.display(chunk_names[0])}: images differ in size {sorted(shapes)}; "
                    "pass --image-size N to resize every image to N x N"
                )
            if arr is not None:
                arrays.append(arr)
            offset += len(chunk_names)
            if progress is not None:
                progress.update(len(chunk_names))
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    if not arrays:
        raise TinyVisionError(f"{source.path}: no readable images")
    return np.concatenate(arrays), keep, bad_msgs


def resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    """Resize an in-memory uint8 (N, H, W, C) array to (N, size, size, C) with PIL's bilinear filter."""
    c = images.shape[-1]
    out = np.empty((len(images), size, size, c), dtype=np.uint8)
    for i, a in enumerate(images):
        img = Image.fromarray(a[..., 0] if c == 1 else a)
        out[i] = to_array(img, c, size)
    return out
