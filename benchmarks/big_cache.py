"""A cache larger than memory: Tiny ImageNet at 320 px (about 31 GB of uint8), built and trained from.

    python benchmarks/big_cache.py [--source ZIP] [--size 320] [--subset 20000] [--keep] [--dir DIR]

1. builds the cache in a child process: decoding streams chunk by chunk to disk, so the peak
   RSS stays bounded whatever the dataset's size (target < 4 GB);
2. trains the same model at the same size from RAM (data.in_memory=true) on a stratified subset
   that fits: training images/s of the in-RAM path;
3. trains one epoch from the whole cache with data.in_memory=false (a read-ahead thread reads
   each batch from the file with O_DIRECT preadv calls, no page of it mapped into the process):
   peak RSS (< 4 GB) and training images/s (target: >= 90% of the in-RAM path's);
4. the in-RAM run again: the host's speed drifts (2x from day to day), so the reference is the
   mean of a run before and a run after the streamed epoch;
then deletes the cache (unless --keep). Each step is a child process, so its peak RSS is its own.
The model is a patchify quicknet (8x8 stride-8 stem), cheap enough that the input pipeline, not
the network, sets the pace: the comparison is of the pipelines.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

DEFAULT_ZIP = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tiny-imagenet-200-dev.zip"

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from tinyvision.data import prepare
    from tinyvision.engine import fit, load_config
    a = json.loads(sys.argv[1])
    t0 = time.perf_counter()
    if a["step"] == "build":
        ds = prepare("tiny-imagenet", a["source"], image_size=a["size"], cache_dir=a["cache"], progress=False)
        out = {"seconds": time.perf_counter() - t0, "bytes": sum(p.stat().st_size for p in ds.path.glob("*.npy")),
               "train": len(ds.split("train"))}
    else:
        cfg = load_config(None, a["config"])
        s = fit(cfg)
        out = {"seconds": time.perf_counter() - t0, "images_per_s": s["images_per_s"], "steps": s["steps"],
               "top1": s["final"]["top1"]}
    out["max_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out["workers_max_rss_gb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # decode processes
    print("RESULT " + json.dumps(out), flush=True)
""")


def child(args: dict) -> dict:
    p = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"step {args['step']} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return json.loads(next(l for l in p.stdout.splitlines() if l.startswith("RESULT "))[7:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=str(DEFAULT_ZIP))
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--subset", type=int, default=20000, help="images of the in-RAM reference run")
    ap.add_argument("--dir", default=None, help="where the cache goes (default: a temp dir on the same disk as /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the cache afterwards")
    ap.add_argument("--batch-size", type=int, default=128)
    a = ap.parse_args()
    root = Path(a.dir or tempfile.mkdtemp(prefix="tv-bigcache-"))
    cache = root / "cache"
    total_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"machine: {os.cpu_count()} cores, {total_gb:.1f} GiB RAM; cache in {cache}", flush=True)
    try:
        build = child({"step": "build", "source": a.source, "size": a.size, "cache": str(cache)})
        print(f"build: {build['bytes'] / 2**30:.1f} GiB in {build['seconds']:.0f} s, peak RSS {build['max_rss_gb']:.2f} GiB "
              f"(each decode worker at most {build['workers_max_rss_gb']:.2f} GiB)", flush=True)
        common = {"data.name": "tiny-imagenet", "data.source": a.source, "data.image_size": a.size,
                  "data.cache_dir": str(cache), "model.name": "quicknet",
                  "model.kwargs": {"stem_stride": 8, "stem": 24, "widths": [32, 64]}, "train.epochs": 1,
                  "train.batch_size": a.batch_size, "augment.policy": "flip,crop:padding=16", "optim.lr": 0.05,
                  "output.quiet": True, "output.tensorboard": False, "train.eval_batch_size": 250}
        ram_args = {"step": "train", "config": {**common, "data.in_memory": True, "data.limit_train": a.subset,
                                                "output.dir": str(root / "run-ram")}}
        ram = [child(ram_args)]
        shutil.rmtree(root / "run-ram")
        print(f"train from RAM ({a.subset} images): {ram[0]['images_per_s']:.0f} images/s, peak RSS "
              f"{ram[0]['max_rss_gb']:.2f} GiB", flush=True)
        stream = child({"step": "train", "config": {**common, "data.in_memory": False,
                                                      "output.dir": str(root / "run-stream")}})
        print(f"train from disk: {stream['images_per_s']:.0f} images/s over {stream['steps']} steps, peak RSS "
              f"{stream['max_rss_gb']:.2f} GiB", flush=True)
        ram.append(child(ram_args))
        print(f"train from RAM again: {ram[1]['images_per_s']:.0f} images/s", flush=True)
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
    print()
    print(f"| step | seconds | peak RSS (GiB) | images/s |")
    print(f"| --- | ---: | ---: | ---: |")
    print(f"| build, {a.size} px, {build['train']:,} train images, {build['bytes'] / 2**30:.1f} GiB | "
          f"{build['seconds']:.0f} | {build['max_rss_gb']:.2f} | – |")
    ram_ips = sum(r["images_per_s"] for r in ram) / len(ram)
    print(f"| one epoch streamed from the cache file | {stream['seconds']:.0f} | {stream['max_rss_gb']:.2f} | "
          f"{stream['images_per_s']:.0f} |")
    for when, r in zip(("before", "after"), ram):
        print(f"| in RAM, {a.subset:,} images ({when}) | {r['seconds']:.0f} | {r['max_rss_gb']:.2f} | "
              f"{r['images_per_s']:.0f} |")
    print(f"streaming / in-RAM (mean of the two): {stream['images_per_s'] / ram_ips:.2f} (target >= 0.90); "
          f"peak RSS build {build['max_rss_gb']:.2f}, train {stream['max_rss_gb']:.2f} GiB (target < 4)")


if __name__ == "__main__":
    main()
