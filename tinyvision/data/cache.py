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
from tinyvision.data.readers import RawDataset
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


def channel_stats(images: np.ndarray, chunk: int = 8192) -> tuple[list[float], list[float]]:
    """Exact per-channel mean and std over all pixels on a [0, 1] scale.

    Counts each of the 256 values per channel (np.bincount), so the result is exact and
    needs no float accumulation over 10^9 pixels."""
    c = images.shape[-1]
    hist = np.zeros((c, 256), dtype=np.int64)
    for i in range(0, len(images), chunk):
        block = np.asarray(images[i : i + chunk])
        for ch in range(c):
            hist[ch] += np.bincount(block[..., ch].ravel(), minlength=256)
    v = np.arange(256, dtype=np.float64) / 255.0
    n = hist.sum(1)
    mean = (hist * v).sum(1) / n
    var = (hist * (v[None, :] - mean[:, None]) ** 2).sum(1) / n
    return mean.tolist(), np.sqrt(var).tolist()


def _validate(raw: RawDataset, where: Path) -> None:
    shapes = {s.images.shape[1:] for s in raw.splits.values()}
    if len(shapes) != 1:
        raise TinyVisionError(f"{where}: splits differ in image size {sorted(shapes)}; pass --image-size N")
    if "train" not in raw.splits or len(raw.splits["train"].images) == 0:
        raise TinyVisionError(f"{where}: no train images")
    for name, s in raw.splits.items():
        if len(s.images) != len(s.labels):
            raise TinyVisionError(f"{where}: {name} has {len(s.images)} images but {len(s.labels)} labels")


def _write(raw: RawDataset, tmp: Path, meta: dict) -> None:
    for name, s in raw.splits.items():
        np.save(tmp / f"{name}.images.npy", np.ascontiguousarray(s.images, dtype=np.uint8))
        np.save(tmp / f"{name}.labels.npy", np.asarray(s.labels, dtype=np.int64))
        if s.boxes is not None:
            np.save(tmp / f"{name}.boxes.npy", np.asarray(s.boxes, dtype=np.int32))
        if s.files is not None:
            (tmp / f"{name}.files.txt").write_text("\n".join(s.files) + "\n")
    # meta.json last: a folder without it is never taken for a cache
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))


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


def _find_existing(root: Path, name: str, image_size: int | None) -> Path | None:
    tag = f"{image_size}px" if image_size else "native"
    found = [p for p in (root / name).glob(f"{tag}-*") if (p / "meta.json").exists()]
    return max(found, key=lambda p: (p / "meta.json").stat().st_mtime) if found else None


def prepare(
    name: str,
    source: str | os.PathLike | None = None,
    *,
    image_size: int | None = None,
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
    final = parent / f"{f'{image_size}px' if image_size else 'native'}-{key}"
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
        if bar is not None:
            bar.close()
        _validate(raw, src)
        mean, std = channel_stats(raw.splits["train"].images)
        h, w, c = raw.splits["train"].images.shape[1:]
        meta = {
            "format": CACHE_FORMAT, "dataset": name, "source": str(Path(src).resolve()), "fingerprint": fp,
            "image_size": [h, w], "channels": c, "class_ids": raw.class_ids, "class_names": raw.class_names,
            "splits": {k: int(len(v.images)) for k, v in raw.splits.items()},
            "labeled": {k: bool((v.labels >= 0).all()) for k, v in raw.splits.items()},
            "val_split": "val" if "val" in raw.splits else spec.val_split if spec.val_split in raw.splits else "train",
            "mean": mean, "std": std, "skipped": raw.skipped, "extra": raw.extra,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "build_seconds": round(time.time() - t0, 2),
        }
        _write(raw, tmp, meta)
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
