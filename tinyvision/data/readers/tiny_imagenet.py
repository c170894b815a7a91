"""Tiny ImageNet-200 in its official layout (zip or extracted folder).

    wnids.txt, words.txt
    train/<wnid>/images/<wnid>_<i>.JPEG, train/<wnid>/<wnid>_boxes.txt
    val/images/val_<i>.JPEG, val/val_annotations.txt  (file \t wnid \t x0 \t y0 \t x1 \t y1)
    test/images/test_<i>.JPEG  (unlabeled)

About 1.8% of train images are grayscale JPEGs; decoding converts them to RGB.
"""
from __future__ import annotations

import posixpath

import numpy as np

from tinyvision.data.archive import Source
from tinyvision.data.decode import IMAGE_EXTENSIONS, ImageFiles
from tinyvision.data.readers import RawDataset, RawSplit
from tinyvision.errors import TinyVisionError



def _text(source: Source, name: str) -> list[str]:
    try:
        return source.read(name).decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise TinyVisionError(f"{source.display(name)}: not UTF-8 text ({e})") from e


def _parse_boxes(source: Source, name: str, n_fields: int) -> dict[str, list[str]]:
    out = {}
    for lineno, line in enumerate(_text(source, name), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != n_fields:
            raise TinyVisionError(
                f"{source.display(name)}:{lineno}: expected {n_fields} tab-separated fields, got {len(parts)}: {line!r}"
            )
        out[parts[0]] = parts[1:]
    return out


def _box(fields: list[str], where: str) -> list[int]:
    try:
        return [int(v) for v in fields]
    except ValueError as e:
        raise TinyVisionError(f"{where}: bad bounding box {fields!r}") from e


def read_tiny_imagenet(source: Source, *, image_size=None, skip_bad=False, workers=None, progress=None) -> RawDataset:
    wnids_path = source.find("wnids.txt")
    if wnids_path is None:
        raise TinyVisionError(f"{source.path}: no wnids.txt: not a Tiny ImageNet folder or zip")
    root = posixpath.dirname(wnids_path)
    join = (lambda *p: posixpath.join(root, *p)) if root else (lambda *p: posixpath.join(*p))
    wnids = [w.strip() for w in _text(source, wnids_path) if w.strip()]
    if len(set(wnids)) != len(wnids):
        raise TinyVisionError(f"{source.display(wnids_path)}: duplicate class ids")
    index = {w: i for i, w in enumerate(wnids)}

    names = {}
    words_path = join("words.txt")
    if words_path in set(source.names()):
        for line in _text(source, words_path):
            wnid, _, words = line.partition("\t")
            if wnid in index:
                names[wnid] = words.split(",")[0].strip()
    class_names = [names.get(w, w) for w in wnids]

    all_names = source.names()
    member_set = set(all_names)

    def images_under(prefix: str) -> list[str]:
        return sorted(n for n in all_names if n.startswith(prefix) and n.lower().endswith(IMAGE_EXTENSIONS))

    # --- train: one folder per wnid, with a boxes file each
    train_files, train_labels, train_boxes = [], [], []
    for wnid in wnids:
        files = images_under(join("train", wnid, "images") + "/")
        if not files:
            raise TinyVisionError(f"{source.display(join('train', wnid, 'images'))}: empty or missing class folder")
        boxes_name = join("train", wnid, f"{wnid}_boxes.txt")
        boxes = _parse_boxes(source, boxes_name, 5) if boxes_name in member_set else {}
        for f in files:
            b = boxes.get(posixpath.basename(f))
            train_files.append(f)
            train_labels.append(index[wnid])
            train_boxes.append(_box(b, source.display(boxes_name)) if b else [-1, -1, -1, -1])
    stray = [n for n in all_names if n.startswith(join("train") + "/") and n.lower().endswith(IMAGE_EXTENSIONS)
             and n.split("/")[-3] not in index]  # .../train/<wnid>/images/<file>
    if stray:
        raise TinyVisionError(f"{source.display(stray[0])}: image of a class absent from {wnids_path}")

    # --- val: flat folder labelled by val_annotations.txt
    val_files, val_labels, val_boxes = [], [], []
    val_images = images_under(join("val", "images") + "/")
    if val_images:
        ann_name = join("val", "val_annotations.txt")
        if ann_name not in member_set:
            raise TinyVisionError(f"{source.display(ann_name)}: missing: val images cannot be labelled without it")
        ann = _parse_boxes(source, ann_name, 6)
        for f in val_images:
            base = posixpath.basename(f)
            if base not in ann:
                raise TinyVisionError(f"{source.display(ann_name)}: no annotation for {base}")
            wnid, *box = ann[base]
            if wnid not in index:
                raise TinyVisionError(f"{source.display(ann_name)}: {base} is labelled {wnid!r}, a class absent from {wnids_path}")
            val_files.append(f)
            val_labels.append(index[wnid])
            val_boxes.append(_box(box, source.display(ann_name)))

    test_files = images_under(join("test", "images") + "/")

    order = [("train", train_files, train_labels, train_boxes),
             ("val", val_files, val_labels, val_boxes),
             ("test", test_files, [-1] * len(test_files), [[-1] * 4] * len(test_files))]
    splits = {}
    for split, files, labels, boxes in order:
        if not files:
            continue
        boxes = np.asarray(boxes, dtype=np.int32)
        if image_size is not None and image_size != 64:
            # Boxes are in the images' 64 px coordinates; scale them with the image.
            boxes = np.where(boxes >= 0, np.round(boxes * (image_size / 64.0)), -1).astype(np.int32)
        splits[split] = RawSplit(
            images=ImageFiles(source, files, 3, image_size, skip_bad, workers, progress),
            labels=np.asarray(labels, dtype=np.int64),
            # relative to the dataset root, so the zip and its extracted folder agree
            files=[f[len(root) + 1 :] if root else f for f in files],
            boxes=boxes,
        )
    return RawDataset(splits=splits, class_ids=wnids, class_names=class_names)

