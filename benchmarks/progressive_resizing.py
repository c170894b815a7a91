"""Does progressive resizing pay? A recipe with and without it, at equal minutes, in one script run.

    python benchmarks/progressive_resizing.py --dataset tiny-imagenet --minutes 30 --start 40 [--until 0.75]
        [--seeds 1] [--holdout 0.1] [--source PATH] [--out DIR] [--json FILE]

Each seed trains the `<dataset>-fast` recipe twice with the same `train.time_budget` (wall minutes
on this machine): as it is, and with `augment.progressive_from=START` (the side grows from START px
to the full size by UNTIL of the steps; tinyvision.engine.progressive). The order alternates from
seed to seed (plain first for even seeds), so that a host whose speed drifts does not favour one
variant. `--holdout 0.1` scores both on a stratified tenth of train instead of the val split (for
Tiny ImageNet: 10,000 images instead of the dev zip's 1,000, a third of the standard error), and
trains on the rest. The cache is built first and is not part of any budget.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from scratch_budget import DATASETS, run  # noqa: E402

from tinyvision.data import prepare  # noqa: E402
from tinyvision.runs import read_summary  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="tiny-imagenet", choices=list(DATASETS))
    ap.add_argument("--minutes", type=float, default=30.0, help="each run's time budget, wall minutes here")
    ap.add_argument("--start", type=int, default=40, help="augment.progressive_from: the first side, px")
    ap.add_argument("--until", type=float, default=0.75, help="augment.progressive_until: share of the steps")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--holdout", type=float, default=0.0, help="score on this share of train (0: the val split)")
    ap.add_argument("--source", default=None)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for both variants")
    ap.add_argument("--out", default=None, help="keep the run dirs here (default: a temp dir); reruns read "
                                                "finished runs back")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    recipe, _, default_src, _, _ = DATASETS[a.dataset]
    src = a.source or default_src
    root = Path(a.out or tempfile.mkdtemp(prefix="tv-progressive-"))
    cache = str(root / "cache")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, runs in {root}", flush=True)
    t0 = time.perf_counter()
    prepare(a.dataset, str(src) if src else None, cache_dir=cache, progress=False)
    print(f"{a.dataset}: cache ready in {time.perf_counter() - t0:.0f} s (not budgeted)", flush=True)
    both = [*a.set] + ([f"data.holdout={a.holdout}"] if a.holdout else [])
    variants = [("plain", "plain", both),  # (table row, run dir tag, overrides)
                (f"progressive {a.start} px -> full by {a.until:g}", "progressive",
                 both + [f"augment.progressive_from={a.start}", f"augment.progressive_until={a.until}"])]
    rows = {name: [] for name, _, _ in variants}
    for seed in range(a.seeds):
        for name, tag, over in variants if seed % 2 == 0 else variants[::-1]:
            r = run(recipe, src, a.minutes * 60, seed, root / f"{a.dataset}-{tag}-s{seed}", cache, over)
            r["steps"] = read_summary(Path(r["run_dir"]))["steps"]
            rows[name].append(r)
    print()
    val = f"holdout {a.holdout:g} of train" if a.holdout else "val"
    print(f"| {recipe}, {a.minutes:g} min each | {val} top-1, each seed | mean ± std | steps | epochs | "
          f"images/s | minutes spent |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, rs in rows.items():
        tops = [r["top1"] for r in rs]
        sd = f" ± {statistics.stdev(tops):.4f}" if len(tops) > 1 else ""

        def each(key, fmt="{}", scale=None):
            return ", ".join(fmt.format(r[key] * scale if scale else r[key]) for r in rs)

        print(f"| {name} | {each('top1', '{:.4f}')} | {statistics.mean(tops):.4f}{sd} | {each('steps')} | "
              f"{each('epochs')} | {each('images_per_s', '{:.0f}')} | {each('spent_s', '{:.1f}', 1 / 60)} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
