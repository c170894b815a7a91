"""Stopping a run cleanly: SIGINT / SIGTERM (or a caller's request) finish the step, write last.pt,
then raise Interrupted, whose message says how to continue."""
from __future__ import annotations

import signal
from pathlib import Path


class Interrupted(Exception):
    """SIGINT / SIGTERM arrived, or a hook asked to stop (signum None); a checkpoint was written first."""

    def __init__(self, signum: int | None, run_dir: Path, step: int):
        self.signum, self.run_dir, self.step = signum, run_dir, step
        why = signal.Signals(signum).name if signum else "request"
        super().__init__(f"interrupted by {why} at step {step}; "
                         f"checkpoint saved. Continue with: tinyvision train --resume {run_dir}")


class StopSignals:
    """While active, SIGINT and SIGTERM only record themselves in `signum`; the training loop
    looks at it after every step. The previous handlers come back on exit. Outside the main
    thread (where handlers cannot be set) it does nothing."""

    def __init__(self):
        self.signum: int | None = None
        self._saved = {}

    def _record(self, signum, frame):
        self.signum = signum

    def __enter__(self) -> "StopSignals":
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self._saved[s] = signal.signal(s, self._record)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._saved.items():
            signal.signal(s, h)
        self._saved.clear()
