"""Class probabilities from a loaded run: over a cached split, or over image files of any kind.

Both paths preprocess exactly as training's evaluation did: uint8 pixels at the cache's size,
then the run's eval transform (resize to the model's input, normalize with the run's mean/std).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tinyvision.data.augment import build_augment
from tinyvision.data.decode import decode_bytes
from tinyvision.data.loader import BatchLoader
from tinyvision.device import precision_dtype
from tinyvision.runs import LoadedModel

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def eval_transform(info: dict, cached_size: int):
    size = info["image_size"]
    return build_augment("none", info["mean"], info["std"], cached_size, size if size != cached_size else None)


def amp_dtype_for(info: dict) -> torch.dtype | None:
    """The run's own precision, so that eval reproduces the numbers its training reported."""
    return precision_dtype(info.get("precision", "fp32"))


@torch.no_grad()
def predict_batches(lm: LoadedModel, batches, tta: str | None = None, amp: bool = True) -> np.ndarray:
    """Softmax probabilities (N, C) float32 for an iterable of model-ready batches.

    tta="flip" averages the probabilities of each image and its mirror image."""
    model = lm.model
    device = next(model.parameters()).device
    dtype = amp_dtype_for(lm.info) if amp else None
    fmt = torch.channels_last if lm.info.get("channels_last") else torch.contiguous_format
    model.to(memory_format=fmt)  # as in training: the layout changes oneDNN's kernels, hence the last bits
    out = []
    for x in batches:
        x = x.to(device).contiguous(memory_format=fmt)
        views = [x, x.flip(3)] if tta == "flip" else [x]
        p = 0
        for v in views:
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(v)
            logits = logits[0] if isinstance(logits, (tuple, list)) else logits
            p = p + torch.softmax(logits.float(), dim=1)
        out.append((p / len(views)).cpu().numpy())
    n_classes = len(lm.info["class_ids"])
    return np.concatenate(out) if out else np.zeros((0, n_classes), np.float32)


def predict_split(lm: LoadedModel, split, cached_size: int, batch_size: int | None = None,
                  tta: str | None = None) -> np.ndarray:
    device = next(lm.model.parameters()).device
    batch_size = batch_size or int(lm.info.get("eval_batch_size", 500))
    loader = BatchLoader(split, batch_size, shuffle=False, drop_last=False, device=device,
                         transform=eval_transform(lm.info, cached_size))
    return predict_batches(lm, (x for x, _ in loader), tta)


def expand_paths(paths) -> list[Path]:
    """Files as given, and the image files inside given folders (sorted, recursively)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


def predict_files(lm: LoadedModel, paths, batch_size: int = 64, tta: str | None = None):
    """(probabilities for the readable files, their paths, {path: error} for the others)."""
    cached = int(lm.info.get("cache_size", lm.info["image_size"]))
    channels = int(lm.info["in_chans"])
    transform = eval_transform(lm.info, cached)
    arrays, ok, bad = [], [], {}
    for p in expand_paths(paths):
        try:
            arrays.append(decode_bytes(p.read_bytes(), channels, cached))
            ok.append(p)
        except FileNotFoundError:
            bad[p] = "no such file"
        except IsADirectoryError:
            bad[p] = "is a directory"
        except Exception as e:  # PIL raises several types for undecodable data
            bad[p] = f"not a readable image ({type(e).__name__}: {e})"
    batches = (transform(torch.from_numpy(np.stack(arrays[i : i + batch_size])).permute(0, 3, 1, 2))
               for i in range(0, len(arrays), batch_size))
    return predict_batches(lm, batches, tta), ok, bad
