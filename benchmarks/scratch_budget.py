"""From scratch, on a clock: the time-budgeted recipes against the reports' recipes at equal minutes.

    python benchmarks/scratch_budget.py                       # every dataset, its budgets, 3 seeds
    python benchmarks/scratch_budget.py --datasets mnist --seeds 1 --minutes mnist=3
    python benchmarks/scratch_budget.py --speed 1              # budgets as wall minutes on this machine

For each dataset and budget: the `<dataset>-fast` recipe (one run per seed) and the reference, the
report's own recipe given the same time budget in the same script run (Tiny ImageNet: seed
report 002's net1 and recipe; CIFAR-10 and MNIST: report 003's ResNet-18 + Adam; Fashion-MNIST:
the demo recipe as it was before the recipes, 10 epochs). Every run is `fit()` with
`train.time_budget`, so it plans its steps from its own measured speed and ends on time; the
cache is built first and is not part of any budget.

Budgets are minutes of the reference machine (the 2-core AVX-512 BF16 host the targets were set
on): `--speed auto` times the engine's training step for two models here and on that machine's
recorded figures (quicknet @ 28 px: 3,405 images/s, seed002-net1 @ 64 px: 174 images/s, both
benchmarks/train_settings.py with bf16 + channels_last, batch 128) and multiplies each budget by
how much slower this machine is (the small model's ratio for MNIST and Fashion-MNIST, the large
one's for CIFAR-10 and Tiny ImageNet). Both the recipe and its reference get the same wall
seconds, so the comparison at equal minutes holds whatever the factor.

Accuracy is on the dataset's val split (Tiny ImageNet: the val images of the given zip; CIFAR,
MNIST: test). "Reaches X at" is the budgeted time of the first epoch whose val top-1 is at least
X, from the recipe run with the longest budget (an upper bound for what a run planned to stop
there would need, since its learning rate would have decayed sooner).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train_settings import measure  # noqa: E402

from tinyvision.data import prepare  # noqa: E402
from tinyvision.engine import fit, load_config  # noqa: E402
from tinyvision.runs import read_metrics, read_summary  # noqa: E402

SHARED = HERE.parent.parent / "shared" / "datasets"
DATASETS = {  # recipe, reference config, default source, reference budgets (minutes), accuracy marks
    "tiny-imagenet": ("tiny-imagenet-fast", "seed002-net1", SHARED / "tiny-imagenet-200-dev.zip", [15, 60], [0.40]),
    "cifar10": ("cifar10-fast", "seed003-cifar10-resnet18-adam", None, [20], [0.93, 0.94]),
    "mnist": ("mnist-fast", "seed003-mnist-resnet18-adam", SHARED / "mnist", [3], [0.994]),
    "fashion-mnist": ("fashion-mnist", "fashion-mnist-before", None, [185 / 60], [0.943]),
}
REFERENCE_SPEED = {"small": ("quicknet", 28, 1, 10, 3405.0), "large": ("seed002-net1", 64, 3, 200, 174.0)}
SPEED_CLASS = {"tiny-imagenet": "large", "cifar10": "large", "mnist": "small", "fashion-mnist": "small"}


def calibrate() -> dict:
    """How many times slower than the reference machine this one trains each model class."""
    dev = torch.device("cpu")
    out = {}
    for cls, (name, size, chans, classes, ref) in REFERENCE_SPEED.items():
        from tinyvision.device import resolve_channels_last, resolve_precision

        dtype = resolve_precision("auto", dev)
        rate = measure(name, size, chans, classes, 128, 10, dev, dtype, resolve_channels_last("auto", dev, dtype), False)
        out[cls] = {"model": name, "images_per_s": rate, "reference_images_per_s": ref, "factor": max(ref / rate, 1e-3)}
        print(f"calibration: {name} @ {size} px {rate:,.0f} images/s here, {ref:,.0f} on the reference: "
              f"budgets x {ref / rate:.2f}", flush=True)
    return out


def run(config: str, source, seconds: float, seed: int, out: Path, cache_dir, extra=()) -> dict:
    """One budgeted run; one that finished in an earlier call of this script with the same
    budget (its summary in `out`) is read back instead, so a benchmark killed midway resumes."""
    s = read_summary(out) if out.exists() else None
    if s is not None and abs(s["time_budget"]["budget_s"] - seconds) < 1:
        print(f"  {out.name}: finished earlier, read back", flush=True)
    else:
        s = _train(config, source, seconds, seed, out, cache_dir, extra)
    curve = [(m["spent_s"], m["val_top1"]) for m in read_metrics(out) if m.get("type") == "epoch" and "val_top1" in m]
    tb = s["time_budget"]
    print(f"  {config} seed {seed}: top-1 {s['final']['top1']:.4f} in {tb['spent_s'] / 60:.1f} min "
          f"({s['epochs']} epochs, {s['images_per_s']:.0f} img/s{', cut' if tb['cut'] else ''})", flush=True)
    return {"top1": s["final"]["top1"], "spent_s": tb["spent_s"], "epochs": s["epochs"], "curve": curve,
            "images_per_s": s["images_per_s"], "cut": tb["cut"], "run_dir": str(out)}


def _train(config: str, source, seconds: float, seed: int, out: Path, cache_dir, extra) -> dict:
    if out.exists():  # unfinished, or made with another budget: start it again
        shutil.rmtree(out)
    cfg = load_config(config, [f"train.time_budget={seconds}", f"train.seed={seed}", f"output.dir={out}",
                               "output.quiet=true", "output.tensorboard=false", *extra])
    if source is not None:
        cfg.data.source = str(source)
    cfg.data.cache_dir = cache_dir
    return fit(cfg)


def reaches(curve, mark) -> float | None:
    return next((t for t, acc in curve if acc >= mark), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--minutes", nargs="*", default=[], metavar="DATASET=M[,M]", help="reference minutes per dataset")
    ap.add_argument("--speed", default="auto", help="auto (calibrate), or budgets x this factor (1: wall minutes)")
    ap.add_argument("--source", nargs="*", default=[], metavar="DATASET=PATH")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--out", default=None, help="keep the run dirs here (default: a temp dir)")
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args()
    minutes = {k: [float(x) for x in v.split(",")] for k, v in (m.split("=") for m in a.minutes)}
    sources = dict(s.split("=", 1) for s in a.source)
    factors = calibrate() if a.speed == "auto" else None
    root = Path(a.out or tempfile.mkdtemp(prefix="tv-scratch-"))
    cache = str(root / "cache")
    results = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, runs in {root}", flush=True)
    for ds in a.datasets:
        recipe, reference, default_src, budgets, marks = DATASETS[ds]
        src = sources.get(ds, default_src)
        t0 = time.perf_counter()
        prepare(ds, str(src) if src else None, cache_dir=cache, progress=False)
        print(f"{ds}: cache ready in {time.perf_counter() - t0:.0f} s (not budgeted)", flush=True)
        factor = factors[SPEED_CLASS[ds]]["factor"] if factors else float(a.speed)
        for m in minutes.get(ds, budgets):
            seconds = m * 60 * factor
            print(f"{ds}, {m:g} reference minutes = {seconds / 60:.1f} minutes here", flush=True)
            rows = [run(recipe, src, seconds, seed, root / f"{ds}-{m:g}m-recipe-s{seed}", cache) for seed in range(a.seeds)]
            ref = None
            if not a.no_reference:
                extra = ["train.epochs=10"] if reference == "fashion-mnist-before" else []
                ref = run(_reference_config(reference, root), src, seconds, 0, root / f"{ds}-{m:g}m-reference", cache, extra)
            results.append({"dataset": ds, "minutes": m, "wall_s": seconds, "recipe": recipe, "reference": reference,
                            "runs": rows, "ref": ref, "marks": marks})
    print()
    print("| dataset | budget (reference min) | minutes here | recipe top-1 (mean ± std, n) | reference top-1 | "
          "difference | recipe epochs | recipe img/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        tops = [x["top1"] for x in r["runs"]]
        mean = statistics.mean(tops)
        sd = statistics.stdev(tops) if len(tops) > 1 else 0.0
        ref = r["ref"]["top1"] if r["ref"] else None
        print(f"| {r['dataset']} | {r['minutes']:g} | {r['wall_s'] / 60:.1f} | {mean:.4f} ± {sd:.4f} ({len(tops)}) | "
              + (f"{ref:.4f} | {100 * (mean - ref):+.1f} pt" if ref is not None else "– | –")
              + f" | {statistics.mean(x['epochs'] for x in r['runs']):.1f} | "
              f"{statistics.mean(x['images_per_s'] for x in r['runs']):,.0f} |")
    print()
    for ds in a.datasets:
        longest = max((r for r in results if r["dataset"] == ds), key=lambda r: r["minutes"], default=None)
        if longest is None:
            continue
        for mark in longest["marks"]:
            times = [reaches(x["curve"], mark) for x in longest["runs"]]
            shown = ", ".join("not reached" if t is None else f"{t / 60:.1f} min" for t in times)
            print(f"{ds}: {mark:.1%} reached at {shown} here (in the {longest['minutes']:g}-reference-minute runs)")
    if a.json:
        Path(a.json).write_text(json.dumps({"calibration": factors, "results": results}, indent=1))


def _reference_config(name: str, root: Path) -> str:
    """The reports' recipes are ready-made configs; the demo recipe as it stood before the recipes
    is written out here, so that the comparison survives retuning the demo."""
    if name != "fashion-mnist-before":
        return name
    p = root / "fashion-mnist-before.yaml"
    p.write_text("data: {name: fashion-mnist}\nmodel: {name: quicknet}\n"
                 "optim: {name: sgd, lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.0005, label_smoothing: 0.1}\n"
                 "schedule: {name: cosine, warmup_epochs: 0.5}\naugment: {policy: \"flip,crop:padding=2\"}\n"
                 "train: {epochs: 10, batch_size: 128}\n")
    return str(p)


if __name__ == "__main__":
    main()
