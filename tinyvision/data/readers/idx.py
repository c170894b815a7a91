"""MNIST and Fashion-MNIST: IDX files, gzipped or not.

IDX: big-endian magic 0x0000 <dtype> <ndim>, then ndim uint32 sizes, then the data.
Images are 0x00000803 (uint8, 3 dims), labels 0x00000801 (uint8, 1 dim).
"""
from __future__ import annotations

import gzip
import posixpath
import struct

import numpy as np

from tinyvision.data.archive import Source
from tinyvision.data.readers import RawDataset, RawSplit
from tinyvision.errors import TinyVisionError

IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def parse_idx(data: bytes, where: str, magic: int) -> np.ndarray:
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise TinyVisionError(f"{where}: corrupt gzip stream ({e})") from e
    if len(data) < 8:
        raise TinyVisionError(f"{where}: too short to be an IDX file ({len(data)} bytes)")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        raise TinyVisionError(f"{where}: wrong IDX magic number 0x{found:08x}, expected 0x{magic:08x}")
    ndim = magic & 0xFF
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = data[4 + 4 * ndim :]
    n = int(np.prod(dims))
    if len(body) != n:
        raise TinyVisionError(f"{where}: header says {dims} ({n} bytes of data) but the file holds {len(body)}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _find(source: Source, stem: str) -> str:
    for n in source.names():
        base = posixpath.basename(n)
        # Accept both official names and the dotted variant some mirrors use (train-images.idx3-ubyte).
        if base in (stem, stem + ".gz") or base.replace(".", "-") in (stem, stem + "-gz"):
            return n
    raise TinyVisionError(f"{source.path}: missing {stem}[.gz]")


def read_idx_dataset(source: Source, class_names: list[str], *, image_size=None, **_) -> RawDataset:
    splits = {}
    for split, (img_stem, lbl_stem) in FILES.items():
        img_name, lbl_name = _find(source, img_stem), _find(source, lbl_stem)
        images = parse_idx(source.read(img_name), source.display(img_name), IMAGES_MAGIC)
        labels = parse_idx(source.read(lbl_name), source.display(lbl_name), LABELS_MAGIC).astype(np.int64)
        if len(images) != len(labels):
            raise TinyVisionError(f"{source.display(lbl_name)}: {len(labels)} labels for {len(images)} images in {img_name}")
        if labels.size and labels.max() >= len(class_names):
            raise TinyVisionError(f"{source.display(lbl_name)}: label {labels.max()} out of range for {len(class_names)} classes")
        images = images[..., None]
        if image_size is not None and images.shape[1] != image_size:
            from tinyvision.data.decode import resize_batch
            images = resize_batch(images, image_size)
        splits[split] = RawSplit(images=np.ascontiguousarray(images), labels=labels)
    return RawDataset(splits=splits, class_ids=list(class_names), class_names=list(class_names))


def read_mnist(source: Source, **kw) -> RawDataset:
    return read_idx_dataset(source, MNIST_CLASSES, **kw)


def read_fashion_mnist(source: Source, **kw) -> RawDataset:
    return read_idx_dataset(source, FASHION_CLASSES, **kw)
