"""Test-time augmentation: which views of a batch a prediction averages, in one place for the
engine's final evaluation (`train.tta`) and for `tinyvision eval` / `predict`.

Modes:
- "flip": the image and its mirror image, equal weights (2 forward passes);
- "flip-shift": as airbench's strongest test-time setting (its `tta_level=2`; our own code):
  that pair at weight 1/2, plus the pair shifted one pixel up-left and the pair shifted one pixel
  down-right (edges reflected) at 1/4 each: 6 passes. Classification only: a shifted mask
  would have to be shifted back, and a one-pixel shift says little about a segmentation.

The prediction is the log of the weighted mean of the views' probabilities, so argmax, top-k and
the loss all see the averaged prediction.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from tinyvision.errors import TinyVisionError

MODES = ("flip", "flip-shift")


def resolve(value) -> str | None:
    """The mode of a `train.tta` setting or a run record's: True -> "flip"; False, "", "none" -> None."""
    if value is True:
        return "flip"
    if value in (False, None, "", "none"):
        return None
    if value not in MODES:
        raise TinyVisionError(f"test-time augmentation {value!r}: choose none, {', '.join(MODES)}")
    return value


def passes(mode: str | None) -> int:
    """Forward passes per image under `mode` (what the time-budget planner multiplies by)."""
    return {None: 1, "flip": 2, "flip-shift": 6}[resolve(mode)]


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """x (N, C, H, W) moved by (dy, dx) pixels, the uncovered edge filled by reflection."""
    p = max(abs(dy), abs(dx))
    padded = F.pad(x, (p, p, p, p), mode="reflect")
    h, w = x.shape[-2:]
    return padded[..., p - dy:p - dy + h, p - dx:p - dx + w]


def views(x: torch.Tensor, mode: str | None) -> Iterator[tuple[float, torch.Tensor]]:
    """(weight, view) for `mode`, one view at a time (a batch of large images is not held six
    times over); the weights add up to 1."""
    mode = resolve(mode)
    if mode is None:
        yield 1.0, x
        return
    shifts = [(1.0, 0)] if mode == "flip" else [(0.5, 0), (0.25, -1), (0.25, 1)]
    for w, d in shifts:
        base = shifted(x, d, d) if d else x
        yield w / 2, base
        yield w / 2, base.flip(3)


def log_mean_probs(logits_of: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, mode: str | None) -> torch.Tensor:
    """float32 (N, classes): without TTA the logits themselves; with it, the log of the weighted
    mean of the views' softmax probabilities. `logits_of(view)` runs the model."""
    if resolve(mode) is None:
        return logits_of(x).float()
    weighted = [logits_of(v).float().log_softmax(1) + math.log(w) for w, v in views(x, mode)]
    return torch.logsumexp(torch.stack(weighted), 0)
