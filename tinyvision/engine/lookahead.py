"""Lookahead weight averaging on airbench's schedule (Keller Jordan's CIFAR-10 speed runs; our own code).

Unlike an EMA that only the evaluation sees, lookahead pulls the weights being trained back
toward their slow average: every `every` steps the slow copy moves toward the trained weights
by (1 - decay) and the trained weights are reset to it. decay grows with the cube of training
progress, base ** every * (step / total) ** 3, so the early steps move freely and the late ones
average over a long window; at the last step the model takes the slow weights outright. BN
running statistics are averaged with the parameters (what a state dict holds), integer buffers
are left alone.

`total` is the run's planned number of steps; under a time budget it is the plan's, so a plan
revision moves the schedule with it.
"""
from __future__ import annotations

import torch
from torch import nn


class Lookahead:
    def __init__(self, model: nn.Module, every: int = 5, base: float = 0.95):
        if every < 1:
            raise ValueError(f"lookahead every {every} steps: must be at least 1")
        self.every, self.base = int(every), float(base)
        self.slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    def decay(self, step: int, total: int) -> float:
        """How much of the slow weights a sync at `step` of `total` keeps."""
        return self.base ** self.every * min(step / max(total, 1), 1.0) ** 3

    @torch.no_grad()
    def update(self, model: nn.Module, step: int, total: int) -> bool:
        """After optimizer step `step` (1-based): sync if it is due; True when it synced."""
        if step >= total:
            keep = 1.0  # the end of training: the model becomes the slow weights
        elif step % self.every == 0:
            keep = self.decay(step, total)
        else:
            return False
        state = model.state_dict()
        for name, slow in self.slow.items():
            slow.lerp_(state[name], 1.0 - keep)
            state[name].copy_(slow)
        return True

    @torch.no_grad()
    def finish(self, model: nn.Module) -> None:
        """End of training, also when a deadline cut it short of `total`: the model takes the slow
        weights (after a last-step sync this changes nothing)."""
        self.update(model, 1, 1)

    def state_dict(self) -> dict:
        return {"every": self.every, "base": self.base, "slow": self.slow}

    def load_state_dict(self, state: dict) -> None:
        self.every, self.base = int(state["every"]), float(state["base"])
        for name, slow in self.slow.items():
            slow.copy_(state["slow"][name])
