"""Atomic file writes: a temp file beside the target, renamed over it only once complete.

A killed process leaves the old file (or none), never half a new one; a failed write leaves
no temp file behind. Used for every file a run dir, a cache or a report holds.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def replacing(path, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside `path` (ending in `suffix`, for writers that want one, as
    numpy's .npy or matplotlib's .png); rename it over `path` when the block succeeds."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)
