"""Any class-per-folder tree (torchvision ImageFolder layout), with optional split folders.

    root/<class>/<image>                       -> one split, "train"
    root/{train,val,test}/<class>/<image>      -> those splits; class list from train
"""
from __future__ import annotations

import posixpath
from collections import defaultdict

import numpy as np

from tinyvision.data.archive import Source
from tinyvision.data.decode import IMAGE_EXTENSIONS, ImageFiles
from tinyvision.data.readers import RawDataset, RawSplit
from tinyvision.errors import TinyVisionError

SPLIT_NAMES = ("train", "val", "test")


def _common_root(names: list[str]) -> str:
    """Strip a single top folder that holds everything (as zips of a folder have)."""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        top = tops.pop()
        if top not in SPLIT_NAMES:
            return top + "/"
    return ""


def read_folder(source: Source, *, image_size=None, skip_bad=False, workers=None, progress=None) -> RawDataset:
    names = source.names()
    prefix = _common_root(names) if names else ""
    rel = [n[len(prefix):] for n in names]
    has_splits = any(r.split("/", 1)[0] in SPLIT_NAMES and r.count("/") >= 2 for r in rel)
    by_split: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    class_dirs: dict[str, set] = defaultdict(set)
    for d in source.dirs():  # empty class folders must be seen too
        if not d.startswith(prefix.rstrip("/")):
            continue
        parts = d[len(prefix):].split("/")
        if has_splits and len(parts) == 2 and parts[0] in SPLIT_NAMES:
            class_dirs[parts[0]].add(parts[1])
        elif not has_splits and len(parts) == 1 and parts[0]:
            class_dirs["train"].add(parts[0])
    for full, r in zip(names, rel):
        parts = r.split("/")
        if has_splits:
            if len(parts) < 3 or parts[0] not in SPLIT_NAMES:
                continue
            split, cls = parts[0], parts[1]
        else:
            if len(parts) < 2:
                continue
            split, cls = "train", parts[0]
        class_dirs[split].add(cls)
        if r.lower().endswith(IMAGE_EXTENSIONS):
            by_split[split][cls].append(full)
    if "train" not in class_dirs:
        raise TinyVisionError(f"{source.path}: no class folders found (expected <class>/<image> or train/<class>/<image>)")
    classes = sorted(class_dirs["train"])
    for split, dirs in class_dirs.items():
        for cls in sorted(dirs):
            if not by_split[split].get(cls):
                where = posixpath.join(prefix + (f"{split}/" if has_splits else ""), cls)
                raise TinyVisionError(f"{source.display(where)}: empty class folder (no images)")
        unknown = sorted(set(dirs) - set(classes))
        if unknown:
            raise TinyVisionError(f"{source.display(prefix + split + '/' + unknown[0])}: class absent from the train folder")
    index = {c: i for i, c in enumerate(classes)}
    splits = {}
    for split in SPLIT_NAMES:
        if split not in by_split:
            continue
        files = [f for c in sorted(by_split[split]) for f in sorted(by_split[split][c])]
        labels = np.asarray([index[c] for c in sorted(by_split[split]) for _ in by_split[split][c]], dtype=np.int64)
        splits[split] = RawSplit(images=ImageFiles(source, files, 3, image_size, skip_bad, workers, progress),
                                 labels=labels, files=files)
    return RawDataset(splits=splits, class_ids=classes, class_names=classes)
