"""Best-so-far and early stopping on one val metric: what best.pt and `train.early_stop_patience` follow."""
from __future__ import annotations


class Monitor:
    def __init__(self, metric: str = "top1", patience: int = 0, task: str = "classification"):
        if metric == "auto":
            metric = "miou" if task == "segmentation" else "top1"
        self.metric, self.patience = metric, patience
        self.mode = "min" if metric == "loss" else "max"
        self.best: float | None = None  # the metric's best value
        self.best_epoch = 0
        self.best_val: dict = {}  # the val metrics of that epoch
        self.bad_epochs = 0  # epochs since the last improvement

    def value(self, val: dict) -> float:
        return val[self.metric]

    def update(self, epoch: int, val: dict) -> bool:
        """Record an epoch's val metrics; True when they are the best so far."""
        v = self.value(val)
        improved = self.best is None or (v < self.best if self.mode == "min" else v > self.best)
        if improved:
            self.best, self.best_epoch, self.best_val, self.bad_epochs = v, epoch, dict(val), 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def exhausted(self) -> bool:
        """No improvement for `patience` epochs (never, with patience 0)."""
        return bool(self.patience) and self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "best_val": self.best_val,
                "bad_epochs": self.bad_epochs}

    def load_state_dict(self, s: dict) -> None:
        self.best, self.best_epoch, self.best_val, self.bad_epochs = s["best"], s["best_epoch"], s["best_val"], s["bad_epochs"]
