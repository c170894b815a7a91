"""Decode once into a uint8 cache; reuse it while the source is unchanged.

Layout: <cache_root>/<dataset>/<size>-<key>/{meta.json, <split>.images.npy, <split>.labels.npy,
<split>.boxes.npy, <split>.files.txt}. A build writes into a hidden temp folder and renames it
into place only when complete, so an interrupted or failed build leaves nothing that loads.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from tinyvision.data.archive import Source
from tinyvision.data.dataset import Dataset
from tinyvision.data.decode import CHUNK
from tinyvision.data.sources import get_spec, resolve_source
from tinyvision.errors import TinyVisionError

CACHE_FORMAT = 1  # bump when the layout or the decoding changes, so old caches are rebuilt


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("TINYVISION_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tinyvision"


def fingerprint(path: Path) -> str:
    """Cheap identity of a source: names, sizes and mtimes of its files (no content hashing:
    a 250 MB zip would cost seconds, and an edit in place changes size or mtime)."""
    h = hashlib.sha1()
    path = Path(path).resolve()
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for f in sorted(files):
                st = os.stat(os.path.join(root, f))
                h.update(f"{os.path.relpath(os.path.join(root, f), path)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    else:
        st = path.stat()
        h.update(f"{path.name}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()


HEADER_BYTES = 256  # room reserved for a .npy header; its shape is known only when the split is written


class NpyWriter:
    """A .npy file written front to back in chunks, so a split of any size passes through memory a
    chunk at a time; the header, which holds the row count, is written last (the row count is known
    only then, when --skip-bad left files out). Plain writes, not a memmap: pages written through a
    mapping stay resident in the process and would count against its memory."""

    def __init__(self, path: Path, dtype):
        self.path, self.dtype = Path(path), np.dtype(dtype)
        self.f = open(self.path, "wb")
        self.f.write(b"\0" * HEADER_BYTES)
        self.n, self.tail = 0, None

    def append(self, arr: np.ndarray) -> None:
        arr = np.ascontiguousarray(arr, dtype=self.dtype)
        if self.tail is None:
            self.tail = arr.shape[1:]
        elif arr.shape[1:] != self.tail:
            raise TinyVisionError(f"{self.path.name}: rows of shape {arr.shape[1:]} after {self.tail}")
        arr.tofile(self.f)
        self.n += len(arr)

    def close(self) -> tuple[int, ...]:
        shape = (self.n, *(self.tail or ()))
        d = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape}
        body = repr(d)
        if len(body) + 11 > HEADER_BYTES:
            raise TinyVisionError(f"{self.path.name}: shape {shape} does not fit the reserved header")
        body += " " * (HEADER_BYTES - 10 - len(body) - 1) + "\n"
        self.f.seek(0)
        self.f.write(b"\x93NUMPY\x01\x00" + (HEADER_BYTES - 10).to_bytes(2, "little") + body.encode("latin1"))
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        return shape


class ChannelStats:
    """Exact per-channel mean and std over all pixels on a [0, 1] scale, fed chunk by chunk.

    Counts each of the 256 values per channel (np.bincount), so the result is exact and needs no
    float accumulation over 10^9 pixels."""

    def __init__(self):
        self.hist = None

    def add(self, block: np.ndarray) -> None:
        c = block.shape[-1]
        if self.hist is None:
            self.hist = np.zeros((c, 256), dtype=np.int64)
        for ch in range(c):
            self.hist[ch] += np.bincount(block[..., ch].ravel(), minlength=256)

    def result(self) -> tuple[list[float], list[float]]:
        v = np.arange(256, dtype=np.float64) / 255.0
        n = self.hist.sum(1)
        mean = (self.hist * v).sum(1) / n
        var = (self.hist * (v[None, :] - mean[:, None]) ** 2).sum(1) / n
        return mean.tolist(), np.sqrt(var).tolist()


def channel_stats(images: np.ndarray, chunk: int = 8192) -> tuple[list[float], list[float]]:
    """ChannelStats over an array (or memmap), chunk by chunk."""
    stats = ChannelStats()
    for i in range(0, len(images), chunk):
        stats.add(np.asarray(images[i : i + chunk]))
    return stats.result()


def _chunks(images) -> "Iterator[tuple[np.ndarray, np.ndarray, list[str]]]":
    """(images, keep mask, bad messages) chunk by chunk: from a reader's chunked source (image
    files it found, batch files it reads in turn) or from an in-memory array alike."""
    if hasattr(images, "chunks"):
        yield from images.chunks()
        return
    for i in range(0, len(images), CHUNK):
        block = images[i : i + CHUNK]
        yield block, np.ones(len(block), dtype=bool), []


def _write_split(name: str, s, tmp: Path, stats: ChannelStats | None) -> tuple[tuple, list[str], int]:
    """Stream one split into tmp/: (image array shape, messages for files left out, labeled?)."""
    writer = NpyWriter(tmp / f"{name}.images.npy", np.uint8)
    masks = None  # segmentation sources also yield each chunk's masks
    keeps, skipped = [], []
    try:
        for arr, keep, bad, *mask in _chunks(s.images):
            if len(arr):
                writer.append(arr)
                if stats is not None:
                    stats.add(arr)
            if mask:
                masks = masks or NpyWriter(tmp / f"{name}.masks.npy", np.uint8)
                if len(mask[0]):
                    masks.append(mask[0])
            keeps.append(keep)
            skipped += bad
    finally:
        shape = writer.close()
        if masks is not None:
            masks.close()
    keep = np.concatenate(keeps) if keeps else np.zeros(0, bool)
    labels = np.asarray(s.labels, dtype=np.int64)
    if len(labels) != len(keep):
        raise TinyVisionError(f"{name} has {len(keep)} images but {len(labels)} labels")
    labels = labels[keep]
    np.save(tmp / f"{name}.labels.npy", labels)
    if s.boxes is not None:
        np.save(tmp / f"{name}.boxes.npy", np.asarray(s.boxes, dtype=np.int32)[keep])
    if s.files is not None:
        (tmp / f"{name}.files.txt").write_text("\n".join(f for f, k in zip(s.files, keep) if k) + "\n")
    return shape, skipped, bool((labels >= 0).all())


def _clean_stale(parent: Path) -> None:
    """Remove temp folders left by builds whose process is gone (killed mid-build)."""
    for d in parent.glob(".tmp-*"):
        try:
            pid = int(d.name.split("-")[1])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            pass


def size_tag(image_size) -> str:
    """A cache folder's size part: 64px, 360x480px (height x width), or native."""
    if not image_size:
        return "native"
    return f"{image_size}px" if isinstance(image_size, int) else f"{image_size[0]}x{image_size[1]}px"


def _find_existing(root: Path, name: str, image_size) -> Path | None:
    tag = size_tag(image_size)
    found = [p for p in (root / name).glob(f"{tag}-*") if (p / "meta.json").exists()]
    return max(found, key=lambda p: (p / "meta.json").stat().st_mtime) if found else None


def prepare(
    name: str,
    source: str | os.PathLike | None = None,
    *,
    image_size: int | tuple | list | None = None,
    cache_dir: str | os.PathLike | None = None,
    skip_bad: bool = False,
    workers: int | None = None,
    progress: bool = True,
    allow_download: bool = True,
    rebuild: bool = False,
) -> Dataset:
    """Return the cached dataset, building the cache first if the source is new or changed."""
    spec = get_spec(name)
    root = cache_root(cache_dir)
    try:
        src = resolve_source(name, source, root / "downloads", allow_download)
    except TinyVisionError:
        existing = None if source is not None else _find_existing(root, name, image_size)
        if existing is None:
            raise
        return Dataset.load(existing)
    fp = fingerprint(src)
    key = hashlib.sha1(f"{CACHE_FORMAT}|{name}|{fp}|{image_size}".encode()).hexdigest()[:16]
    parent = root / name
    final = parent / f"{size_tag(image_size)}-{key}"
    if (final / "meta.json").exists() and not rebuild:
        return Dataset.load(final)

    parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(parent)
    tmp = parent / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    t0 = time.time()
    try:
        bar = None
        source = Source(src)  # lists the members once; a zip of 100k entries takes a moment
        if progress:
            from tqdm import tqdm
            from tinyvision.data.decode import IMAGE_EXTENSIONS
            # image files to decode; 0 for IDX/CIFAR sources, which decode in one step (no bar)
            total = sum(n.lower().endswith(IMAGE_EXTENSIONS) for n in source.names()) if source.kind != "tar" else 0
            bar = tqdm(total=total or None, desc=f"decoding {name}", unit="img", disable=not total)
        raw = spec.reader(source, image_size=image_size, skip_bad=skip_bad, workers=workers, progress=bar)
        if "train" not in raw.splits or len(raw.splits["train"].images) == 0:
            raise TinyVisionError(f"{src}: no train images")
        # Splits stream to disk chunk by chunk (decoded in parallel where they are image files):
        # memory holds a few chunks, whatever the dataset's size. Train first, for its statistics.
        stats, shapes, labeled, skipped = ChannelStats(), {}, {}, list(raw.skipped)
        for k in sorted(raw.splits, key=lambda k: k != "train"):
            shapes[k], bad, labeled[k] = _write_split(k, raw.splits[k], tmp, stats if k == "train" else None)
            skipped += bad
        if bar is not None:
            bar.close()
        if shapes["train"][0] == 0:
            raise TinyVisionError(f"{src}: no readable train images")
        sizes = {v[1:] for v in shapes.values() if v[0]}
        if len(sizes) != 1:
            raise TinyVisionError(f"{src}: splits differ in image size {sorted(sizes)}; pass --image-size N")
        mean, std = stats.result()
        h, w, c = shapes["train"][1:]
        meta = {
            "format": CACHE_FORMAT, "dataset": name, "source": str(Path(src).resolve()), "fingerprint": fp,
            "image_size": [h, w], "channels": c, "class_ids": raw.class_ids, "class_names": raw.class_names,
            "splits": {k: int(shapes[k][0]) for k in raw.splits},
            "labeled": {k: labeled[k] for k in raw.splits},
            "val_split": "val" if "val" in raw.splits else spec.val_split if spec.val_split in raw.splits else "train",
            "mean": mean, "std": std, "skipped": skipped, "extra": raw.extra,
            "task": raw.task, "ignore_index": raw.ignore_index,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "build_seconds": round(time.time() - t0, 2),
        }
        # meta.json last: a folder without it is never taken for a cache
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.rename(tmp, final)
        except OSError:
            if final.exists() and rebuild:
                shutil.rmtree(final)
                os.rename(tmp, final)
            elif not (final / "meta.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return Dataset.load(final)
