"""ImageNet-1k: the ILSVRC-2012 layout, and the downsampled ImageNet files (Imagenet32, Imagenet64).

ILSVRC-2012 (an extracted folder, or an archive of it; Kaggle's ILSVRC/Data/CLS-LOC/ too):

    train/<wnid>/<wnid>_<i>.JPEG
    val/ILSVRC2012_val_<8 digits>.JPEG                  flat, labelled by one of:
        LOC_val_solution.csv                             ImageId,PredictionString ("<wnid> x0 y0 x1 y1 ...")
        ILSVRC2012_validation_ground_truth.txt + meta.mat  the devkit's (1-based ILSVRC2012_IDs; needs scipy)
    test/*.JPEG                                          unlabeled (optional)
    LOC_synset_mapping.txt                               "<wnid> <names>": class order and names (optional)

Classes are the train folders' wnids in sorted order (the standard class index), named from
LOC_synset_mapping.txt when it is there. Images are decoded by the cache, chunk by chunk.

Downsampled ImageNet (Chrabaszcz, Loshchilov & Hutter 2017), the official .npz batches:

    train_data_batch_1.npz ... train_data_batch_10.npz, val_data.npz
        data: uint8 (N, 3 * S * S), each row the R, G then B planes; labels: 1-based class indices
    map_clsloc.txt                                       "<wnid> <index> <name>" (optional)

The side S (32, 64, ...) is read from the rows' width.
"""
from __future__ import annotations

import csv
import io
import posixpath
import re

import numpy as np

from tinyvision.data.archive import Source
from tinyvision.data.decode import CHUNK, IMAGE_EXTENSIONS, ImageFiles
from tinyvision.data.readers import RawDataset, RawSplit
from tinyvision.errors import TinyVisionError

WNID = re.compile(r"n\d{8}$")


def _text(source: Source, name: str) -> list[str]:
    try:
        return source.read(name).decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise TinyVisionError(f"{source.display(name)}: not UTF-8 text ({e})") from None


def _by_basename(source: Source, base: str) -> str | None:
    found = [n for n in source.names() if posixpath.basename(n) == base]
    return min(found, key=len) if found else None


def _val_labels(source: Source, val_files: list[str], wnids: list[str]) -> list[int]:
    index = {w: i for i, w in enumerate(wnids)}
    stems = [posixpath.splitext(posixpath.basename(f))[0] for f in val_files]
    csv_name = _by_basename(source, "LOC_val_solution.csv")
    if csv_name is not None:
        where = source.display(csv_name)
        rows = {}
        reader = csv.reader(io.StringIO(source.read(csv_name).decode("utf-8")))
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["ImageId", "PredictionString"]:
            raise TinyVisionError(f"{where}: expected the header ImageId,PredictionString")
        for lineno, row in enumerate(reader, 2):
            if len(row) < 2 or not row[1].split():
                raise TinyVisionError(f"{where}:{lineno}: expected an image id and a prediction string")
            rows[row[0].strip()] = row[1].split()[0]
        out = []
        for stem in stems:
            if stem not in rows:
                raise TinyVisionError(f"{where}: no label for {stem}")
            if rows[stem] not in index:
                raise TinyVisionError(f"{where}: {stem} is labelled {rows[stem]!r}, a class with no train folder")
            out.append(index[rows[stem]])
        return out
    gt_name = _by_basename(source, "ILSVRC2012_validation_ground_truth.txt")
    if gt_name is None:
        raise TinyVisionError(f"{source.path}: val images but no labels: put LOC_val_solution.csv, or the devkit's "
                              "ILSVRC2012_validation_ground_truth.txt with its meta.mat, beside them")
    ids = [int(v) for v in _text(source, gt_name) if v.strip()]
    meta_name = posixpath.join(posixpath.dirname(gt_name), "meta.mat")
    if meta_name not in set(source.names()):
        raise TinyVisionError(f"{source.display(meta_name)}: missing: the devkit's ground truth names classes by "
                              "ILSVRC2012_ID, which meta.mat maps to wnids")
    try:
        from scipy.io import loadmat
    except ImportError:
        raise TinyVisionError(f"{source.display(meta_name)}: reading it needs scipy (pip install scipy), "
                              "or use LOC_val_solution.csv instead") from None
    synsets = loadmat(io.BytesIO(source.read(meta_name)), squeeze_me=True)["synsets"]
    by_id = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets}
    out = []
    for stem in stems:  # ILSVRC2012_val_00000001 is line 1
        m = re.search(r"(\d+)$", stem)
        if not m or not 1 <= int(m.group(1)) <= len(ids):
            raise TinyVisionError(f"{source.display(gt_name)}: no line for {stem}")
        wnid = by_id.get(ids[int(m.group(1)) - 1])
        if wnid not in index:
            raise TinyVisionError(f"{source.display(gt_name)}: {stem} is labelled {wnid!r}, a class with no train folder")
        out.append(index[wnid])
    return out


def read_imagenet(source: Source, *, image_size=None, skip_bad=False, workers=None, progress=None) -> RawDataset:
    names = source.names()
    train = [n for n in names if n.lower().endswith(IMAGE_EXTENSIONS) and re.search(r"(^|/)train/n\d{8}/[^/]+$", n)]
    if not train:
        raise TinyVisionError(f"{source.path}: no train/<wnid>/ folders of images: not the ILSVRC-2012 layout")
    root = train[0][: train[0].index("train/")]
    wnids = sorted({n.split("/")[-2] for n in train})
    index = {w: i for i, w in enumerate(wnids)}
    train.sort()
    titles = {}
    mapping = _by_basename(source, "LOC_synset_mapping.txt")
    if mapping is not None:
        for line in _text(source, mapping):
            wnid, _, words = line.strip().partition(" ")
            titles[wnid] = words.split(",")[0].strip() or wnid
    splits = {"train": RawSplit(ImageFiles(source, train, 3, image_size, skip_bad, workers, progress),
                                np.asarray([index[n.split("/")[-2]] for n in train], dtype=np.int64),
                                [n[len(root):] for n in train])}
    for split, labeled in (("val", True), ("test", False)):
        files = sorted(n for n in names if n.startswith(root + split + "/") and n.lower().endswith(IMAGE_EXTENSIONS)
                       and n.count("/") == root.count("/") + 1)
        if not files:
            continue
        labels = _val_labels(source, files, wnids) if labeled else [-1] * len(files)
        splits[split] = RawSplit(ImageFiles(source, files, 3, image_size, skip_bad, workers, progress),
                                 np.asarray(labels, dtype=np.int64), [n[len(root):] for n in files])
    return RawDataset(splits, wnids, [titles.get(w, w) for w in wnids])


def _load_npz(source: Source, member: str):
    """An .npz batch, opened lazily (its arrays are read when asked for)."""
    try:
        if source.kind == "dir":
            return np.load(source.path / member, allow_pickle=False)
        return np.load(io.BytesIO(source.read(member)), allow_pickle=False)
    except Exception as e:
        raise TinyVisionError(f"{source.display(member)}: not a readable .npz batch ({type(e).__name__}: {e})") from None


def _npy_shape(z, key: str) -> tuple:
    """The shape of an array in an .npz without reading its data."""
    with z.zip.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        return read(f)[0]


class NpzRows:
    """The downsampled ImageNet batches of one split as image chunks (NHWC uint8), one batch
    file at a time and CHUNK rows at a time within it: the cache streams them to disk."""

    def __init__(self, source: Source, members: list[str], n: int, side: int, image_size: int | None):
        self.source, self.members, self.n, self.side, self.image_size = source, members, n, side, image_size

    def __len__(self) -> int:
        return self.n

    def chunks(self):
        from tinyvision.data.decode import resize_batch

        s = self.side
        for member in self.members:
            data = _load_npz(self.source, member)["data"]
            for i in range(0, len(data), CHUNK):
                block = np.ascontiguousarray(data[i : i + CHUNK].reshape(-1, 3, s, s).transpose(0, 2, 3, 1))
                if self.image_size is not None and self.image_size != s:
                    block = resize_batch(block, self.image_size)
                yield block, np.ones(len(block), dtype=bool), []


def read_imagenet_downsampled(source: Source, *, image_size=None, **_) -> RawDataset:
    names = source.names()
    train = sorted((n for n in names if re.fullmatch(r"train_data_batch_\d+\.npz", posixpath.basename(n))),
                   key=lambda n: int(re.search(r"batch_(\d+)", posixpath.basename(n)).group(1)))
    val = [n for n in names if posixpath.basename(n) == "val_data.npz"]
    if not train:
        raise TinyVisionError(f"{source.path}: no train_data_batch_N.npz: not the downsampled ImageNet files")
    splits, n_classes, side = {}, 1000, None
    for split, members in (("train", train), ("val", val)):
        if not members:
            continue
        labels = []
        for m in members:
            z = _load_npz(source, m)
            if "data" not in z.files or "labels" not in z.files:
                raise TinyVisionError(f"{source.display(m)}: expected arrays 'data' and 'labels'")
            shape = _npy_shape(z, "data")
            s = int(round((shape[1] / 3) ** 0.5)) if len(shape) == 2 else 0
            if len(shape) != 2 or 3 * s * s != shape[1] or (side is not None and s != side):
                raise TinyVisionError(f"{source.display(m)}: data of shape {shape} is not rows of 3 x S x S images of one size")
            side = s
            lab = np.asarray(z["labels"], dtype=np.int64).ravel() - 1  # the files' labels count from 1
            if len(lab) != shape[0]:
                raise TinyVisionError(f"{source.display(m)}: {len(lab)} labels for {shape[0]} images")
            if lab.size and (lab.min() < 0 or lab.max() >= n_classes):
                raise TinyVisionError(f"{source.display(m)}: labels outside 1..{n_classes}")
            labels.append(lab)
        lab = np.concatenate(labels)
        splits[split] = RawSplit(NpzRows(source, members, len(lab), side, image_size), lab)
    ids, titles = [str(i + 1) for i in range(n_classes)], [str(i + 1) for i in range(n_classes)]
    mapping = _by_basename(source, "map_clsloc.txt")
    if mapping is not None:
        for line in _text(source, mapping):
            parts = line.split()
            if len(parts) >= 3 and WNID.match(parts[0]) and parts[1].isdigit() and 1 <= int(parts[1]) <= n_classes:
                ids[int(parts[1]) - 1], titles[int(parts[1]) - 1] = parts[0], parts[2].replace("_", " ")
    return RawDataset(splits, ids, titles, extra={"downsampled_side": side})
