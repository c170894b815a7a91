"""airbench94, the CIFAR-10 speed record, on this CPU beside `cifar10-fast` at equal minutes.

    python benchmarks/airbench_cpu.py --airbench AIRBENCH/legacy/airbench94.py \\
        --source cifar-10-python.tar.gz [--runs 1] [--seeds 1] [--dtype auto|bfloat16|float32] [--out DIR]
    # more cifar10-fast seeds at an earlier run's airbench seconds (its seeds in DIR are read back)
    python benchmarks/airbench_cpu.py --runs 0 --budget SECONDS --seeds 3 --source ... --out DIR

airbench is not part of tinyvision and is not copied into it: fetch the public repository
KellerJordan/cifar10-airbench and pass its `legacy/airbench94.py` (the uncompiled 94% script,
9.9 epochs, 94.01% mean on an A100 in 3.83 s). This script runs that file as published, with
only its CUDA-specific lines swapped for CPU ones (PATCHES below; each must match the stated
number of times, so a changed upstream file fails loudly instead of running something else):
fp16 becomes `--dtype` (auto: bf16 where oneDNN has bf16 kernels for this CPU, as on AVX-512
BF16 or AMX; airbench keeps its weights in half precision, so bf16 is its design with a shorter
mantissa; float32 elsewhere, since emulated bf16 on an AVX2-only CPU ran airbench's first epoch
in 5,002 s, about 90x slower), CUDA events become a wall
clock, and its data come from the official tarball instead of a download. Its own timer
(whitening init + training + the final TTA evaluation; the per-epoch val passes it prints are
outside it) is the time it is credited with.

Then `cifar10-fast` trains with `train.time_budget` set to airbench's mean seconds (same
script run, same machine: equal minutes), so the table answers "does tinyvision's recipe reach
what airbench reaches, in the time airbench takes?", or to `--budget` seconds, and the table's
last column gives when each first reached 94%. The tinyvision cache build is not budgeted, as
airbench's data loading is outside its timer.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from scratch_budget import reaches, run as budgeted_run  # noqa: E402

from tinyvision.data import prepare  # noqa: E402
from tinyvision.data.archive import Source  # noqa: E402
from tinyvision.data.readers.cifar import read_cifar10  # noqa: E402

# (text in airbench94.py, replacement, how many times it must occur)
PATCHES = [
    ("net = net.half().cuda()", "net = net.to(DTYPE)", 1),
    ("self.images.half()", "self.images.to(DTYPE)", 1),
    ("(torch.half, torch.float)", "(DTYPE, torch.float)", 1),  # the lookahead's dtype check
    ("gpu=0)", "gpu='cpu')", 1),  # the loader's map_location
    ("torch.cuda.Event(enable_timing=True)", "_WallEvent()", 2),
    ("torch.cuda.synchronize()", "None", 3),
    ("return tta_val_acc\n", "return tta_val_acc, total_time_seconds\n", 1),
]


class _WallEvent:
    """torch.cuda.Event's timing interface on a wall clock (CPU work is synchronous)."""

    def record(self) -> None:
        self.t = time.perf_counter()

    def elapsed_time(self, end: "_WallEvent") -> float:
        return 1e3 * (end.t - self.t)


def load_airbench(path: Path, dtype: torch.dtype) -> dict:
    code = path.read_text()
    for old, new, count in PATCHES:
        found = code.count(old)
        if found != count:
            raise SystemExit(f"{path}: expected {count} x {old!r}, found {found}: not the airbench94.py this was written for")
        code = code.replace(old, new)
    namespace = {"__name__": "airbench94", "__file__": str(path), "DTYPE": dtype, "_WallEvent": _WallEvent}
    exec(compile(code, str(path), "exec"), namespace)
    return namespace


def write_airbench_data(source: str, root: Path) -> None:
    """airbench's loader reads cifar10/{train,test}.pt: uint8 NHWC images, labels, class names."""
    root.mkdir(parents=True, exist_ok=True)
    ds = read_cifar10(Source(source))
    for split, name in (("train", "train.pt"), ("test", "test.pt")):
        s = ds.splits[split]
        tmp = root / (name + ".tmp")
        torch.save({"images": torch.from_numpy(s.images), "labels": torch.from_numpy(s.labels),
                    "classes": ds.class_names}, tmp)
        tmp.replace(root / name)


def run_airbench(a: argparse.Namespace, work: Path) -> list[dict]:
    """`a.runs` runs of airbench94 in `work`, each with its accuracy, its own seconds and its wall seconds."""
    write_airbench_data(a.source, work / "cifar10")
    ab = load_airbench(Path(a.airbench).resolve(), getattr(torch, a.dtype))
    if a.epochs is not None:
        ab["hyp"]["opt"]["train_epochs"] = a.epochs
    here = os.getcwd()
    os.chdir(work)  # its loader opens the relative path cifar10/
    try:
        ab["print_columns"](ab["logging_columns_list"], is_head=True)
        runs = []
        for i in range(a.runs):
            t0 = time.perf_counter()
            acc, own_s = ab["main"](i)
            runs.append({"top1": acc, "seconds": own_s, "wall_s": time.perf_counter() - t0})
    finally:
        os.chdir(here)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--airbench", help="path to airbench's legacy/airbench94.py (needed unless --runs 0)")
    ap.add_argument("--source", required=True, help="the official cifar-10-python.tar.gz")
    ap.add_argument("--runs", type=int, default=1,
                    help="airbench runs (0 with --budget: more cifar10-fast seeds beside an earlier run's, same --out)")
    ap.add_argument("--seeds", type=int, default=1, help="cifar10-fast seeds (0 skips it)")
    ap.add_argument("--budget", type=float, default=None,
                    help="cifar10-fast's time budget in seconds (default: airbench's mean seconds)")
    ap.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32"],
                    help="airbench's dtype; auto: bfloat16 where the CPU has bf16 kernels, else float32")
    ap.add_argument("--epochs", type=float, default=None, help="override airbench's 9.9 epochs (smoke runs)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="config overrides for cifar10-fast (try a variant beside airbench)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.runs == 0 and a.budget is None:
        ap.error("--runs 0 needs --budget: the airbench seconds to give cifar10-fast")
    if a.runs and a.airbench is None:
        ap.error("--airbench is needed to run airbench (or --runs 0 --budget SECONDS)")
    if a.dtype == "auto":  # the same hardware test that tinyvision's precision auto makes first
        a.dtype = "bfloat16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "float32"
    a.source = str(Path(a.source).resolve())  # absolute: run_airbench works in airbench's folder
    root = Path(a.out or tempfile.mkdtemp(prefix="tv-airbench-")).resolve()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, airbench94 in {a.dtype}, runs in {root}",
          flush=True)
    runs = run_airbench(a, root / "airbench") if a.runs else []
    budget = a.budget if a.budget is not None else statistics.mean(r["seconds"] for r in runs)

    ours = []
    if a.seeds:
        cache = str(root / "cache")
        prepare("cifar10", a.source, cache_dir=cache, progress=False)
        ours = [budgeted_run("cifar10-fast", a.source, budget, seed, root / f"cifar10-fast-s{seed}", cache, a.set)
                for seed in range(a.seeds)]

    def cell(xs):
        return f"{statistics.mean(xs):.4f}" + (f" ± {statistics.stdev(xs):.4f}" if len(xs) > 1 else "") + f" ({len(xs)})"

    def at(seconds):
        return f"{seconds:.0f}" if seconds is not None else "not reached"

    # airbench scores once, at the end (its per-epoch val_acc has no TTA): it reaches 94% at its
    # end or not at all; cifar10-fast scores every epoch, so the first epoch at 94% counts.
    print()
    print("| run | top-1 (mean ± std, n) | seconds (its own clock) | wall seconds | 94% at (s, each run) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    if runs:
        print(f"| airbench94, {a.dtype} | {cell([r['top1'] for r in runs])} | "
              f"{statistics.mean(r['seconds'] for r in runs):.0f} | {statistics.mean(r['wall_s'] for r in runs):.0f} | "
              f"{', '.join(at(r['seconds'] if r['top1'] >= 0.94 else None) for r in runs)} |")
    if ours:
        name = " ".join(["cifar10-fast", *a.set])
        print(f"| {name}, time budget {budget:.0f} s | {cell([r['top1'] for r in ours])} | "
              f"{statistics.mean(r['spent_s'] for r in ours):.0f} | | "
              f"{', '.join(at(reaches(r['curve'], 0.94)) for r in ours)} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"dtype": a.dtype, "set": a.set, "airbench": runs, "cifar10_fast": ours},
                                           indent=1))


if __name__ == "__main__":
    main()
