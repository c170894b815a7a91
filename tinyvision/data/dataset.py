"""A prepared dataset as the rest of tinyvision sees it: memory-mapped uint8 splits plus metadata.

A Split may be a view (an index array over the cached rows): holdout splits and
`--limit-train` subsets are views, never copies.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyvision.errors import TinyVisionError


@dataclass
class Split:
    name: str
    images: np.ndarray  # uint8 (N_all, H, W, C), usually a read-only memmap over the cache
    labels: np.ndarray  # int64 (N_all,), -1 for unlabeled
    files: list[str] | None = None
    boxes: np.ndarray | None = None
    indices: np.ndarray | None = None  # rows of `images` in this view; None = all rows
    masks: np.ndarray | None = None  # segmentation: uint8 (N_all, H, W) class indices (ignore_index where none)

    def __len__(self) -> int:
        return len(self.images) if self.indices is None else len(self.indices)

    @property
    def rows(self) -> np.ndarray:
        return np.arange(len(self.images)) if self.indices is None else self.indices

    @property
    def targets(self) -> np.ndarray:
        """Labels of the rows in this view."""
        return self.labels if self.indices is None else self.labels[self.indices]

    @property
    def labeled(self) -> bool:
        return bool(len(self.labels)) and bool((self.labels >= 0).all())

    def view(self, name: str, rows: np.ndarray) -> "Split":
        return Split(name, self.images, self.labels, self.files, self.boxes, np.sort(self.rows[rows]), self.masks)

    def stratified(self, fraction: float | None = None, count: int | None = None, seed: int = 0):
        """Seeded, stratified (taken, rest) views: `fraction` or `count` of each class's rows."""
        targets = self.targets
        if not self.labeled:
            raise TinyVisionError(f"split {self.name!r} is unlabeled: cannot split it by class")
        if count is not None:
            if not 0 < count <= len(self):
                raise TinyVisionError(f"cannot take {count} of {len(self)} {self.name} images")
            fraction = count / len(self)
        elif fraction is None or not 0.0 < fraction < 1.0:
            raise TinyVisionError(f"holdout fraction must lie in (0, 1), got {fraction}")
        rng = np.random.default_rng([seed, 0x5EED])
        taken = []
        classes, counts = np.unique(targets, return_counts=True)
        # Largest-remainder allocation so that exactly `count` rows are taken when count is given.
        exact = counts * fraction
        k = np.floor(exact).astype(int)
        if count is not None:
            short = count - k.sum()
            k[np.argsort(-(exact - k), kind="stable")[:short]] += 1
        else:
            k = np.maximum(np.round(exact).astype(int), 1)
        for c, kc in zip(classes, k):
            pos = np.flatnonzero(targets == c)
            taken.append(rng.permutation(pos)[:kc])
        taken = np.sort(np.concatenate(taken))
        rest = np.setdiff1d(np.arange(len(self)), taken)
        return self.view(self.name, taken), self.view(self.name, rest)


def available_memory() -> int:
    """Bytes the OS says it can give without swapping (MemAvailable), or 0 where unknown."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# The ImageNet statistics torchvision's (and most) pretrained weights expect, and report 002 used.
IMAGENET_NORMALIZATION = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


class Dataset:
    """A prepared dataset: `ds.split("train")`, `ds.mean`, `ds.class_names`, `ds.holdout(0.1)`."""

    def __init__(self, path: Path, meta: dict, mmap: bool = True):
        self.path, self.meta = Path(path), meta
        self._mmap = mmap
        self._splits: dict[str, Split] = {}

    @classmethod
    def load(cls, path: Path, mmap: bool = True) -> "Dataset":
        meta_file = Path(path) / "meta.json"
        if not meta_file.exists():
            raise TinyVisionError(f"{path}: not a tinyvision cache (no meta.json)")
        return cls(path, json.loads(meta_file.read_text()), mmap)

    name = property(lambda self: self.meta["dataset"])
    num_classes = property(lambda self: len(self.meta["class_ids"]))
    class_ids = property(lambda self: self.meta["class_ids"])
    class_names = property(lambda self: self.meta["class_names"])
    image_size = property(lambda self: tuple(self.meta["image_size"]))
    channels = property(lambda self: self.meta["channels"])
    mean = property(lambda self: tuple(self.meta["mean"]))
    std = property(lambda self: tuple(self.meta["std"]))
    split_names = property(lambda self: list(self.meta["splits"]))
    val_split = property(lambda self: self.meta["val_split"])
    task = property(lambda self: self.meta.get("task", "classification"))
    ignore_index = property(lambda self: self.meta.get("ignore_index"))

    def split(self, name: str) -> Split:
        if name not in self.meta["splits"]:
            raise TinyVisionError(f"{self.name} has no {name!r} split; it has {', '.join(self.meta['splits'])}")
        if name not in self._splits:
            mode = "r" if self._mmap else None
            p = self.path
            files = (p / f"{name}.files.txt").read_text().splitlines() if (p / f"{name}.files.txt").exists() else None
            boxes = np.load(p / f"{name}.boxes.npy", mmap_mode=mode) if (p / f"{name}.boxes.npy").exists() else None
            masks = np.load(p / f"{name}.masks.npy", mmap_mode=mode) if (p / f"{name}.masks.npy").exists() else None
            self._splits[name] = Split(name, np.load(p / f"{name}.images.npy", mmap_mode=mode),
                                       np.load(p / f"{name}.labels.npy"), files, boxes, masks=masks)
        return self._splits[name]

    def holdout(self, fraction: float, seed: int = 0, split: str = "train") -> tuple[Split, Split]:
        """(train_rest, holdout) views of `split`, stratified and seeded; for tuning without touching val."""
        held, rest = self.split(split).stratified(fraction=fraction, seed=seed)
        return rest.view(f"{split}-rest", np.arange(len(rest))), held.view("holdout", np.arange(len(held)))

    def training_splits(self, *, holdout: float = 0.0, val_split: str | None = None, seed: int = 0,
                        limit_train: int | None = None) -> tuple[Split, Split, str]:
        """(train, val, val's name) for a run: val is a stratified `holdout` of train when that is > 0
        (the dataset's val stays untouched), else `val_split` or the dataset's own val split;
        `limit_train` takes a stratified, seeded subset of what trains."""
        train = self.split("train")
        if holdout > 0:
            train, val = self.holdout(holdout, seed=seed)
        else:
            val = self.split(val_split or self.val_split)
            if not val.labeled:
                raise TinyVisionError(f"{self.name}'s {val.name!r} split is unlabeled; validate on another split "
                                      "(data.val_split) or a holdout of train (data.holdout=0.1)")
        if limit_train:
            train = train.stratified(count=min(limit_train, len(train)), seed=seed)[0]
        return train, val, val.name

    def eval_split(self, name: str, *, holdout: float = 0.0, seed: int = 0) -> Split:
        """A split by the name `eval` takes: "val" (the dataset's val, its test where it has none),
        "holdout" (the part of train a run held out with these `holdout` and `seed`), or any split."""
        if name == "holdout":
            if not holdout:
                raise TinyVisionError("this run did not hold out part of train (data.holdout is 0)")
            return self.holdout(holdout, seed=seed)[1]
        return self.split(self.val_split if name == "val" and "val" not in self.split_names else name)

    def normalization(self, spec: str = "dataset") -> tuple[tuple, tuple]:
        """(mean, std) for data.normalize: the dataset's own statistics, ImageNet's, or given numbers
        "m1,m2,m3/s1,s2,s3" (3-channel numbers for a grey dataset: their average)."""
        if spec == "dataset":
            return tuple(self.mean), tuple(self.std)
        if spec == "imagenet":
            mean, std = IMAGENET_NORMALIZATION["mean"], IMAGENET_NORMALIZATION["std"]
        else:
            try:
                mean, std = (tuple(float(v) for v in part.split(",")) for part in spec.split("/"))
            except ValueError:
                raise TinyVisionError(f"data.normalize {spec!r}: dataset, imagenet, or 'm1,m2,m3/s1,s2,s3'") from None
        if len(mean) == 1 and self.channels > 1 or len(mean) == 3 and self.channels == 1:
            mean, std = (sum(mean) / len(mean),) * self.channels, (sum(std) / len(std),) * self.channels
        if len(mean) != self.channels or len(std) != self.channels or min(std) <= 0:
            raise TinyVisionError(f"data.normalize {spec!r}: needs {self.channels} means and {self.channels} positive stds")
        return mean, std

    def info(self) -> dict:
        m = self.meta
        return {"dataset": m["dataset"], "num_classes": self.num_classes, "splits": m["splits"],
                "image_size": m["image_size"], "channels": m["channels"], "mean": m["mean"], "std": m["std"],
                "class_ids": m["class_ids"], "class_names": m["class_names"], "val_split": m["val_split"], "task": self.task,
                "cache": str(self.path), "source": m["source"], "skipped": m["skipped"], **m.get("extra", {})}
