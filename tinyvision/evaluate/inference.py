"""Class probabilities from a loaded run: over a cached split, or over image files of any kind.

Both paths preprocess exactly as training's evaluation did: uint8 pixels at the cache's size,
then the run's eval transform (resize to the model's input, normalize with the run's mean/std).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tinyvision.data.augment import build_augment
from tinyvision.data.decode import IMAGE_EXTENSIONS, decode_bytes
from tinyvision.data.loader import BatchLoader
from tinyvision.device import precision_dtype
from tinyvision.models.outputs import main_output
from tinyvision.runs import LoadedModel, RunRecord
from tinyvision.tta import log_mean_probs as tta_log_mean_probs


def eval_transform(record: RunRecord, cached_size: int):
    size = record.image_size
    return build_augment("none", record.mean, record.std, cached_size, size if size != cached_size else None)


@torch.no_grad()
def predict_batches(lm: LoadedModel, batches, tta: str | None = None, amp: bool = True) -> np.ndarray:
    """Softmax probabilities (N, C) float32 for an iterable of model-ready batches.

    tta ("flip", "flip-shift": tinyvision.tta) averages the probabilities of the image's views."""
    model = lm.model
    device = next(model.parameters()).device
    dtype = precision_dtype(lm.record.precision) if amp else None  # the run's own, to reproduce its numbers
    fmt = torch.channels_last if lm.record.channels_last else torch.contiguous_format
    model.to(memory_format=fmt)  # as in training: the layout changes oneDNN's kernels, hence the last bits
    out = []
    for x in batches:
        x = x.to(device).contiguous(memory_format=fmt)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            log_p = tta_log_mean_probs(lambda v: main_output(model(v)), x, tta)
        out.append(torch.softmax(log_p, dim=1).cpu().numpy())
    n_classes = lm.record.num_classes
    return np.concatenate(out) if out else np.zeros((0, n_classes), np.float32)


def predict_split(lm: LoadedModel, split, cached_size: int, batch_size: int | None = None,
                  tta: str | None = None) -> np.ndarray:
    device = next(lm.model.parameters()).device
    batch_size = batch_size or lm.record.eval_batch_size
    loader = BatchLoader(split, batch_size, shuffle=False, drop_last=False, device=device,
                         transform=eval_transform(lm.record, cached_size))
    return predict_batches(lm, (x for x, _ in loader), tta)


def expand_paths(paths) -> list[Path]:
    """Files as given, and the image files inside given folders (sorted, recursively)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS)
        else:
            out.append(p)
    return out


def predict_files(lm: LoadedModel, paths, batch_size: int = 64, tta: str | None = None):
    """(probabilities for the readable files, their paths, {path: error} for the others)."""
    cached, channels = lm.record.cache_size, lm.record.in_chans
    transform = eval_transform(lm.record, cached)
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
