"""The search budget: wall-clock seconds or a number of trials.

No trial starts that cannot finish in the time left by its expected cost, learned from the
trials that finished (their mean duration plus one standard deviation, so that one lucky fast
trial does not license a doomed start). A running trial past the deadline is stopped by the
caller, through `expired()`. The clock is injectable, so the logic is tested without waiting.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

from tinyvision.engine.config import parse_duration
from tinyvision.errors import TinyVisionError



def parse_budget(text: str) -> tuple[float | None, int | None]:
    """"15m", "1h30m", "90s", "2h" -> (seconds, None); "20" -> (None, 20 trials)."""
    t = str(text).strip().lower()
    if t.isdigit():
        if int(t) <= 0:
            raise TinyVisionError(f"budget {text!r}: a number of trials must be positive")
        return None, int(t)
    try:
        seconds = parse_duration(t, "budget")
    except TinyVisionError:
        raise TinyVisionError(f"budget {text!r}: give a duration (15m, 1h30m, 90s) or a number of trials (20)") from None
    if seconds <= 0:
        raise TinyVisionError(f"budget {text!r}: must be positive")
    return seconds, None


class Budget:
    def __init__(self, seconds: float | None = None, trials: int | None = None, spent: float = 0.0,
                 clock: Callable[[], float] = time.monotonic):
        if seconds is None and trials is None:
            raise TinyVisionError("a budget needs seconds or a number of trials")
        self.seconds, self.trials = seconds, trials
        self.clock = clock
        self.t0 = clock() - spent  # `spent`: seconds used by earlier runs of the same search

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def time_left(self) -> float:
        return float("inf") if self.seconds is None else self.seconds - self.elapsed()

    def expired(self) -> bool:
        return self.time_left() <= 0

    @staticmethod
    def expected_cost(durations: list[float]) -> float:
        """Seconds a new trial is expected to take: mean + one standard deviation of finished trials."""
        if not durations:
            return 0.0
        spread = statistics.stdev(durations) if len(durations) > 1 else 0.0
        return statistics.mean(durations) + spread

    def can_start(self, trials_done: int, durations: list[float]) -> tuple[bool, str]:
        """(whether a new trial may start, why not)."""
        if self.trials is not None and trials_done >= self.trials:
            return False, f"{self.trials} trials done"
        if self.seconds is None:
            return True, ""
        left = self.time_left()
        need = self.expected_cost(durations)
        if left <= 0:
            return False, "time is up"
        if need > left:
            return False, f"a trial is expected to take {need:.0f} s, {left:.0f} s are left"
        return True, ""
