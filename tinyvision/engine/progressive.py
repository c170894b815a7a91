"""Progressive resizing: training batches start small and grow to the full input size.

`augment.progressive_from: S0` (px) and `augment.progressive_until: U` (a share of the run's
steps): the side grows linearly from S0 at the first step to the full size at U of the steps, on
a ladder of multiples of LADDER px (few distinct shapes: each new one costs kernel set-up, and a
recompile under torch.compile), and stays at the full size for the rest; val passes and the final
evaluation always see the full size. Small early batches are cheaper steps, so a time budget buys
more of them (fast.ai's DAWNBench ImageNet runs, EfficientNetV2's progressive learning); the
steps after U let the weights and the batch-norm statistics settle at the size they are scored at.

A step's cost at side s is modelled as `fixed + (1 - fixed) * (s / full) ** 2` full-size steps:
the pixels shrink, the optimizer step and the per-layer overheads do not. The time-budget planner
times steps at both ends of the ladder to find `fixed` (tinyvision.engine.plan).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyvision.errors import TinyVisionError

LADDER = 8  # px between the sides the ramp uses


@dataclass(frozen=True)
class Progressive:
    start: int  # px at the first step
    full: int  # px the model is evaluated at (augment.size, or the cached size)
    until: float  # share of the run's steps after which every batch has the full size

    def __post_init__(self):
        if not 0 < self.start < self.full:
            raise TinyVisionError(f"augment.progressive_from {self.start}: give a side between 1 and the full "
                                  f"input size, {self.full} px, exclusive (0 turns progressive resizing off)")
        if not 0 < self.until <= 1:
            raise TinyVisionError(f"augment.progressive_until {self.until}: give a share of the steps in (0, 1]")

    @property
    def ladder(self) -> np.ndarray:
        """The sides used: the start, the multiples of LADDER between, the full size."""
        inner = range((self.start // LADDER + 1) * LADDER, self.full, LADDER)
        return np.array([self.start, *inner, self.full])

    def sides(self, first: int, last: int, total: int) -> np.ndarray:
        """The side of each step first .. last - 1 (steps counted from 0) of a run of `total` steps."""
        ramp = max(1.0, self.until * total)
        target = self.start + (self.full - self.start) * np.minimum(np.arange(first, last) / ramp, 1.0)
        ladder = self.ladder
        return ladder[np.searchsorted(ladder, target + 1e-9, side="right") - 1]

    def side(self, step: int, total: int) -> int:
        return int(self.sides(step, step + 1, total)[0])

    def work(self, first: int, last: int, total: int, fixed: float) -> float:
        """Steps first .. last - 1 of a `total`-step run, counted in full-size steps."""
        if last <= first:
            return 0.0
        rel = (self.sides(first, last, total) / self.full) ** 2
        return float(np.sum(fixed + (1.0 - fixed) * rel))

    def fixed_share(self, start_steps_per_s: float, full_steps_per_s: float) -> float:
        """`fixed` from the speeds measured at the start and full sides (clipped to [0, 1]: timing
        noise can put a small-side step above a full one, or below its pixel share)."""
        ratio = full_steps_per_s / max(start_steps_per_s, 1e-12)  # a start step's cost, in full steps
        q = (self.start / self.full) ** 2
        return float(min(1.0, max(0.0, (ratio - q) / (1.0 - q))))


def progressive_from_config(augment, full: int) -> Progressive | None:
    """The config's schedule (None when augment.progressive_from is 0)."""
    if not augment.progressive_from:
        return None
    return Progressive(int(augment.progressive_from), int(full), float(augment.progressive_until))
