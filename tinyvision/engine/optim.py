"""Optimizers and learning-rate schedules.

The schedule is a pure function of the step (plus the plateau factor, which lives in its
state), so a resumed run sets exactly the learning rates an uninterrupted one would.
torch's LambdaLR cannot save its lambdas and ReduceLROnPlateau does not compose with
warmup; one small class does both.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from tinyvision.engine.config import OPTIMIZERS, SCHEDULES, OptimConfig, ScheduleConfig
from tinyvision.errors import TinyVisionError


def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool,
                 norm_bias_lr_scale: float = 1.0) -> list[dict]:
    """Weights that decay, and (unless told otherwise) norm weights and biases that do not.

    A parameter with fewer than 2 dimensions is a bias or a norm's scale, as timm decides. With
    `norm_bias_lr_scale` != 1 the parameters of normalization layers get a group of their own
    whose lr is scaled (Schedule multiplies `lr_scale` in; airbench trains BN shifts 64x faster),
    while other biases (a conv's, a linear's) keep the base lr; if they decay, that group's weight
    decay is divided by the scale, so every group shrinks by the same lr x weight decay per step,
    as airbench sets it: the scale speeds up learning, not decay."""
    if (decay_norm_and_bias or weight_decay == 0) and norm_bias_lr_scale == 1.0:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    small_decay = weight_decay if decay_norm_and_bias else 0.0
    norm = set()
    if norm_bias_lr_scale != 1.0:
        norm_types = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
        norm = {id(p) for m in model.modules() if isinstance(m, norm_types) for p in m.parameters(recurse=False)}
    decay, small, scaled = [], [], []
    for p in model.parameters():
        if p.requires_grad:
            (scaled if id(p) in norm else small if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": small, "weight_decay": small_decay}]
    if norm_bias_lr_scale == 1.0:
        return groups
    groups.append({"params": scaled, "weight_decay": small_decay / norm_bias_lr_scale, "lr_scale": norm_bias_lr_scale})
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: OptimConfig, groups: list[dict] | None = None) -> torch.optim.Optimizer:
    """The optimizer cfg names, over `groups` (default: decay / no-decay groups of all parameters)."""
    groups = groups if groups is not None else param_groups(model, cfg.weight_decay, cfg.decay_norm_and_bias,
                                                            cfg.norm_bias_lr_scale)
    name = cfg.name.lower()
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps, momentum=cfg.momentum)
    raise TinyVisionError(f"unknown optimizer {cfg.name!r}; choose one of {', '.join(OPTIMIZERS)}")


class Schedule:
    """Sets every group's lr to base_lr * factor(step) before each step; `epoch_end(metric)` drives plateau."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, base_lr: float,
                 steps_per_epoch: int, epochs: int, monitor_mode: str = "max"):
        if cfg.name not in SCHEDULES:
            raise TinyVisionError(f"unknown schedule {cfg.name!r}; choose one of {', '.join(SCHEDULES)}")
        self.optimizer, self.cfg, self.base_lr = optimizer, cfg, base_lr
        self.steps_per_epoch, self.total = max(steps_per_epoch, 1), max(steps_per_epoch * epochs, 1)
        self.warmup = self._warmup_steps()
        self.mode = monitor_mode
        self.step_count = 0
        self.plateau_scale, self.plateau_best, self.plateau_bad = 1.0, None, 0
        self.knots: list[tuple[int, float, float]] = []  # (step, schedule step, slope): see retarget
        self._apply()

    def factor(self, step: int) -> float:
        c, spe = self.cfg, self.steps_per_epoch
        if c.name == "onecycle":  # its own warm phase; annealed with cosines as torch's OneCycleLR
            up = max(int(c.pct_start * self.total), 1)
            lo, end = 1 / c.div_factor, 1 / (c.div_factor * c.final_div_factor)
            if step < up:
                return lo + (1 - lo) * (1 - math.cos(math.pi * step / up)) / 2
            t = min((step - up) / max(self.total - up, 1), 1.0)
            return end + (1 - end) * (1 + math.cos(math.pi * t)) / 2
        if step < self.warmup:
            return c.warmup_start + (1 - c.warmup_start) * step / self.warmup
        if c.name == "step":
            f = c.gamma ** (step // (spe * c.step_epochs))
        elif c.name == "multistep":
            f = c.gamma ** sum(step >= m * spe for m in c.milestones)
        elif c.name == "cosine":
            t = min((step - self.warmup) / max(self.total - self.warmup, 1), 1.0)
            floor = c.min_lr / self.base_lr if self.base_lr else 0.0
            f = floor + (1 - floor) * (1 + math.cos(math.pi * t)) / 2
        elif c.name == "linear":  # straight down to min_lr at the last step
            t = min((step - self.warmup) / max(self.total - self.warmup, 1), 1.0)
            floor = c.min_lr / self.base_lr if self.base_lr else 0.0
            f = 1 - (1 - floor) * t
        elif c.name == "time-decay":
            f = 1.0 / (1.0 + c.decay * step)
        else:  # constant, plateau
            f = 1.0
        return f * self.plateau_scale

    def _warmup_steps(self) -> int:
        if self.cfg.warmup_fraction > 0:
            return round(self.cfg.warmup_fraction * self.total)
        return round(self.cfg.warmup_epochs * self.steps_per_epoch)

    def set_total(self, total_steps: int) -> None:
        """Make the run `total_steps` long (a time budget's plan): cosine, linear, one-cycle and a
        warmup_fraction stretch or shrink to it; warmup_epochs, step and multistep keep their epochs."""
        self.total = max(int(total_steps), 1)
        self.warmup = self._warmup_steps()
        self._apply()

    def retarget(self, step: int, total_steps: int) -> None:
        """From `step` on, cover the rest of the schedule in `total_steps - step` steps instead: a
        time budget's revised plan. The lr stays continuous; the schedule ends at the new last step."""
        v = self.schedule_step(step)
        self.knots.append((int(step), v, (self.total - v) / max(total_steps - step, 1)))
        self._apply()

    def schedule_step(self, step: int) -> float:
        """Where on the schedule a step lies: itself, until a retarget maps later steps onto the rest."""
        v = float(step)
        for s0, v0, slope in self.knots:
            if step >= s0:
                v = v0 + (step - s0) * slope
        return v

    @property
    def lr(self) -> float:
        return self.base_lr * self.factor(self.schedule_step(self.step_count))

    def _apply(self) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr * g.get("lr_scale", 1.0)

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def epoch_end(self, metric: float | None) -> None:
        """Reduce-on-plateau: multiply by gamma after `patience` epochs without improvement."""
        if self.cfg.name != "plateau" or metric is None:
            return
        better = self.plateau_best is None or (metric > self.plateau_best if self.mode == "max" else metric < self.plateau_best)
        if better:
            self.plateau_best, self.plateau_bad = metric, 0
        else:
            self.plateau_bad += 1
            if self.plateau_bad > self.cfg.patience:
                self.plateau_scale *= self.cfg.gamma
                self.plateau_bad = 0
                self._apply()

    def state_dict(self) -> dict:
        return {"step_count": self.step_count, "plateau_scale": self.plateau_scale,
                "plateau_best": self.plateau_best, "plateau_bad": self.plateau_bad,
                "knots": [list(k) for k in self.knots]}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step_count"])
        self.plateau_scale, self.plateau_best = float(state["plateau_scale"]), state["plateau_best"]
        self.plateau_bad = int(state["plateau_bad"])
        self.knots = [(int(s), float(v), float(k)) for s, v, k in state.get("knots", [])]
        self._apply()
