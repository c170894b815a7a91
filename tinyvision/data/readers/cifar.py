"""CIFAR-10 / CIFAR-100 "python version": pickled batches, as the official tar.gz or extracted.

CIFAR-10: cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
CIFAR-100: cifar-100-python/{train, test, meta} with fine and coarse labels.
Each batch is a dict with b"data" (N, 3072) uint8 rows laid out as 3 x 32 x 32 (channel first).
"""
from __future__ import annotations

import io
import pickle
import posixpath

import numpy as np

from tinyvision.data.archive import Source
from tinyvision.data.readers import RawDataset, RawSplit
from tinyvision.errors import TinyVisionError

# The batches pickle numpy arrays; anything else in them is refused, so a doctored file cannot run code.
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _load(source: Source, name: str) -> dict:
    try:
        obj = _SafeUnpickler(io.BytesIO(source.read(name)), encoding="bytes").load()
    except TinyVisionError:
        raise
    except Exception as e:
        raise TinyVisionError(f"{source.display(name)}: not a CIFAR python batch ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise TinyVisionError(f"{source.display(name)}: not a CIFAR python batch (a {type(obj).__name__}, not a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _member(source: Source, base: str) -> str:
    name = source.find(base)
    if name is None:
        raise TinyVisionError(f"{source.path}: missing CIFAR file {base}")
    return name


def _images(batch: dict, where: str) -> np.ndarray:
    data = batch.get("data")
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072:
        raise TinyVisionError(f"{where}: b'data' is not an (N, 3072) array")
    return np.ascontiguousarray(data.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _names(meta: dict, key: str) -> list[str]:
    return [n.decode() if isinstance(n, bytes) else str(n) for n in meta[key]]


def _split(source, name, label_key, n_classes, image_size):
    batch = _load(source, name)
    where = source.display(name)
    if label_key not in batch:
        raise TinyVisionError(f"{where}: no {label_key!r} entry")
    labels = np.asarray(batch[label_key], dtype=np.int64)
    images = _images(batch, where)
    if len(labels) != len(images) or (labels.size and (labels.min() < 0 or labels.max() >= n_classes)):
        raise TinyVisionError(f"{where}: labels do not match the images or lie outside 0..{n_classes - 1}")
    if image_size is not None and image_size != 32:
        from tinyvision.data.decode import resize_batch
        images = resize_batch(images, image_size)
    return images, labels, batch


def read_cifar10(source: Source, *, image_size=None, **_) -> RawDataset:
    meta = _load(source, _member(source, "batches.meta"))
    names = _names(meta, "label_names")
    parts = [_split(source, _member(source, f"data_batch_{i}"), "labels", len(names), image_size) for i in range(1, 6)]
    test = _split(source, _member(source, "test_batch"), "labels", len(names), image_size)
    train = RawSplit(images=np.concatenate([p[0] for p in parts]), labels=np.concatenate([p[1] for p in parts]))
    return RawDataset(splits={"train": train, "test": RawSplit(images=test[0], labels=test[1])},
                      class_ids=names, class_names=names)


def read_cifar100(source: Source, *, image_size=None, **_) -> RawDataset:
    meta_name = _member(source, "meta")
    meta = _load(source, meta_name)
    fine, coarse = _names(meta, "fine_label_names"), _names(meta, "coarse_label_names")
    root = posixpath.dirname(meta_name)
    join = (lambda n: posixpath.join(root, n)) if root else (lambda n: n)
    splits, coarse_labels = {}, {}
    for split in ("train", "test"):
        images, labels, batch = _split(source, join(split), "fine_labels", len(fine), image_size)
        splits[split] = RawSplit(images=images, labels=labels)
        coarse_labels[split] = np.asarray(batch.get("coarse_labels", []), dtype=np.int64).tolist()
    # fine -> coarse mapping, derived from the train labels (each fine class has one superclass)
    fine_to_coarse = [-1] * len(fine)
    for f, c in zip(splits["train"].labels.tolist(), coarse_labels["train"]):
        fine_to_coarse[f] = c
    return RawDataset(splits=splits, class_ids=fine, class_names=fine,
                      extra={"coarse_class_names": coarse, "fine_to_coarse": fine_to_coarse})
