"""Readers: one per on-disk format, each turning a Source into a RawDataset of uint8 arrays."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinyvision.data.decode import ImageFiles


@dataclass
class RawSplit:
    images: np.ndarray | ImageFiles  # uint8 (N, H, W, C), or image files the cache decodes as it writes
    labels: np.ndarray  # int64 (N,), -1 where the split is unlabeled
    files: list[str] | None = None  # member path of each image, where images come from files
    boxes: np.ndarray | None = None  # int32 (N, 4) x0, y0, x1, y1; -1 where unknown
    # (with ImageFiles: one entry per file; the cache drops those of files left out by --skip-bad)


@dataclass
class RawDataset:
    splits: dict[str, RawSplit]
    class_ids: list[str]  # stable identity of each class (wnid, folder name, or index as text)
    class_names: list[str]  # human-readable
    extra: dict = field(default_factory=dict)  # format-specific metadata (CIFAR-100 coarse labels...)
    task: str = "classification"  # or "segmentation": each image comes with a mask of class indices
    ignore_index: int | None = None  # segmentation: the mask value of pixels without a class
    skipped: list[str] = field(default_factory=list)  # unreadable files left out under --skip-bad
