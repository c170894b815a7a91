"""Checkpoint files: written to a temp file, fsynced and renamed, so a kill never leaves half a file;
read with `weights_only=True`, with an error naming the file when it is not a readable one.

A checkpoint is a dict of tensors and plain Python data only (config as a dict, RNG states as
tensors and lists), so `torch.load(path, weights_only=True)` reads it. The engine writes them,
and everything that reads a run dir or a weights file loads them through `load_checkpoint`.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from tinyvision.atomic import replacing
from tinyvision.errors import TinyVisionError


def save_checkpoint(obj: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())  # on disk before the rename makes it the checkpoint


def load_checkpoint(path, map_location="cpu", what: str = "tinyvision checkpoint"):
    """torch.load(path, weights_only=True); a missing, truncated or foreign file raises
    TinyVisionError naming it and saying why."""
    path = Path(path)
    if not path.exists():
        raise TinyVisionError(f"{path}: no such file ({what} expected)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise TinyVisionError(f"{path}: not a readable {what} ({type(e).__name__}: {e})") from None
