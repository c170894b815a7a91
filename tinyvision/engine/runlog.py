"""What a run records: metrics.jsonl (append-only JSON lines), TensorBoard events, the console.

On resume, metrics.jsonl is cut back to its size when the checkpoint was written and
TensorBoard purges later steps, so a killed-and-resumed run logs each step once.

On a terminal the console gets a progress bar; anywhere else (CI, nohup, a log file) a plain
line every PROGRESS_EVERY_S seconds instead of a bar's thousands of carriage-return updates.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm


PROGRESS_EVERY_S = 30.0  # seconds between progress lines when the console is not a terminal


class RunLog:
    def __init__(self, run_dir: Path, *, enabled: bool, tensorboard: bool, quiet: bool,
                 resume_offset: int | None = None, resume_step: int = 0, stream=None):
        self.enabled, self.quiet = enabled, quiet
        self.path = Path(run_dir) / "metrics.jsonl"
        self.tb = None
        self.bar = None
        self.stream = stream or sys.stderr  # where the progress goes
        self._lines = None  # non-terminal progress: [description, total, done, last line's time, postfix]
        if not enabled:
            return
        if resume_offset is not None and self.path.exists():
            with open(self.path, "r+b") as f:
                f.truncate(resume_offset)
        self._f = open(self.path, "a", buffering=1)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=resume_step + 1 if resume_offset is not None else None)

    def offset(self) -> int:
        """Bytes written so far: saved in checkpoints to cut the log back on resume."""
        if not self.enabled:
            return 0
        self._f.flush()
        return self._f.tell()

    def write(self, record: dict, tb_prefix: str) -> None:
        if not self.enabled:
            return
        self._f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            step = record["step"]
            for k, v in record.items():
                if k not in ("step", "epoch") and isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(f"{tb_prefix}/{k}", v, step)

    def start_epoch(self, epoch: int, epochs: int, total: int, done: int) -> None:
        if not self.enabled or self.quiet:
            return
        desc = f"epoch {epoch + 1}/{epochs}"
        if getattr(self.stream, "isatty", lambda: False)():
            self.bar = tqdm(total=total, initial=done, desc=desc, unit="batch", dynamic_ncols=True, leave=True,
                            file=self.stream)
        else:
            self._lines = [desc, total, done, time.monotonic(), {}]

    def progress(self, n: int = 1, **postfix) -> None:
        fmt = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in postfix.items()}
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(fmt, refresh=False)
        elif self._lines is not None:
            lines = self._lines
            lines[2] += n
            lines[4].update(fmt)
            now = time.monotonic()
            if now - lines[3] >= PROGRESS_EVERY_S:
                lines[3] = now
                extra = "  ".join(f"{k} {v}" for k, v in lines[4].items())
                print(f"{lines[0]}: batch {lines[2]}/{lines[1]}  {extra}".rstrip(), file=self.stream, flush=True)

    def end_epoch(self, line: str) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self._lines = None
        self.print(line)

    def print(self, line: str) -> None:
        if self.enabled:
            print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.enabled and not self._f.closed:
            self._f.close()
            if self.tb is not None:
                self.tb.close()


class Meter:
    """Running train loss and accuracy, summed on the device so the hot loop never waits for it."""

    def __init__(self, device):
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss * n, correct, n
        self.window = self.sums.clone()  # sums at the last step line

    def add(self, loss, correct, n: int) -> None:
        self.sums += torch.stack([loss.detach().double() * n, correct.double(),
                                  torch.tensor(float(n), dtype=torch.float64, device=self.sums.device)])

    def since_last_read(self) -> dict:
        """Mean train loss over the steps since the previous call (the step line's window)."""
        loss, _, n = (self.sums - self.window).tolist()
        self.window = self.sums.clone()
        return {"loss": loss / max(n, 1.0), "n": int(n)}

    def state(self) -> torch.Tensor:
        return torch.stack([self.sums, self.window]).cpu()

    def load_state(self, state: torch.Tensor) -> None:
        self.sums.copy_(state[0])
        self.window.copy_(state[1])

    def read(self) -> dict:
        loss, correct, n = self.sums.tolist()
        n = max(n, 1.0)
        return {"loss": loss / n, "top1": correct / n, "n": int(n)}
