"""Fetch a published file and verify its MD5 before it is used. Nothing here runs in tests
unless a test passes a file:// URL."""
from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from tinyvision.errors import TinyVisionError


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path, md5: str, timeout: float = 30.0) -> Path:
    """Download `url` to `dest` through a temp file; a checksum mismatch deletes it and raises."""
    dest = Path(dest)
    if dest.exists() and md5sum(dest) == md5:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".part{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
            while block := r.read(1 << 20):
                f.write(block)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise TinyVisionError(f"{url}: download failed ({e})") from e
    got = md5sum(tmp)
    if got != md5:
        tmp.unlink(missing_ok=True)
        raise TinyVisionError(f"{url}: checksum mismatch (md5 {got}, expected {md5}); the download was deleted")
    os.replace(tmp, dest)
    return dest
