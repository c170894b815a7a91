"""The demo recipe on Fashion-MNIST over several seeds: test top-1 and wall time of each whole run.

    python benchmarks/fashion_mnist.py [--seeds 0 1 2] [--out runs/bench-fmnist] [--set KEY=VALUE ...]

Each seed runs `tinyvision demo` as a user would (a fresh process: start-up, data, training,
evaluation), timed from outside. Target: top-1 >= 0.930 and <= 300 s for every seed on a
2-core CPU. The last line reads `fashion-mnist: top1 mean <m> std <s>, max seconds <t>`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="runs/bench-fmnist")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for every seed (retuning)")
    a = ap.parse_args()
    out = Path(a.out)
    print(f"{'seed':>4s} {'test top1':>10s} {'top5':>7s} {'seconds':>8s} {'train img/s':>12s}")
    tops, secs = [], []
    for seed in a.seeds:
        run = out / f"seed{seed}"
        shutil.rmtree(run, ignore_errors=True)
        t0 = time.perf_counter()
        overrides = [x for kv in [f"train.seed={seed}", *a.set] for x in ("--set", kv)]
        subprocess.run([sys.executable, "-m", "tinyvision", "demo", "--quiet", "--out", str(run), *overrides],
                       check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
        s = json.loads((run / "summary.json").read_text())
        tops.append(s["final"]["top1"])
        secs.append(seconds)
        print(f"{seed:4d} {s['final']['top1']:10.4f} {s['final']['top5']:7.4f} {seconds:8.1f} {s['images_per_s']:12.0f}",
              flush=True)
    std = statistics.stdev(tops) if len(tops) > 1 else 0.0
    print(f"fashion-mnist: top1 mean {statistics.mean(tops):.4f} std {std:.4f}, max seconds {max(secs):.0f}")


if __name__ == "__main__":
    main()
