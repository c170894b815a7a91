"""A budgeted search on Fashion-MNIST against the demo recipe at the same number of epochs.

    python benchmarks/search_fashion_mnist.py [--budget 15m] [--space small-cnn] [--out studies/bench-fm]

Runs `tinyvision search` as a user would (one process, timed from outside; target: done within
the budget + 5%), then the demo recipe with the same epochs per trial on the same holdout split,
and prints both holdout top-1 figures and the report page. The last line reads
`search: best holdout top1 <b> vs demo recipe <d> at <e> epochs, <t> s of <budget> s`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tinyvision.engine import fit, load_config
from tinyvision.search.budget import parse_budget
from tinyvision.search.space import load_space
from tinyvision.search.study import open_study, summary_of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", default="15m")
    ap.add_argument("--space", default="small-cnn")
    ap.add_argument("--out", default="studies/bench-fm")
    a = ap.parse_args()
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    seconds, _ = parse_budget(a.budget)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tinyvision", "search", "--space", a.space, "--budget", a.budget,
                    "--data", "fashion-mnist", "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    took = time.perf_counter() - t0
    s = summary_of(open_study(out))
    subprocess.run([sys.executable, "-m", "tinyvision", "search", "report", str(out)], check=True,
                   stdout=subprocess.DEVNULL)

    epochs = load_space(a.space).fixed["train.epochs"]
    demo = fit(load_config("fashion-mnist", {"data.holdout": 0.1, "train.epochs": epochs, "output.quiet": True,
                                             "output.dir": str(out / "demo-recipe"), "output.tensorboard": False}))
    study = open_study(out)
    print(f"{'trial':>5s} {'state':>9s} {'holdout top1':>12s} {'seconds':>8s}  params")
    for t in sorted(study.trials, key=lambda t: t.number):
        v = "-" if t.value is None else f"{t.value:.4f}"
        secs = t.user_attrs.get("seconds")
        print(f"{t.number:5d} {t.state.name.lower():>9s} {v:>12s} {secs or 0:8.0f}  {json.dumps(t.user_attrs.get('overrides', t.params))}")
    print(f"trials {s['trials']} ({', '.join(f'{v} {k}' for k, v in s['states'].items())}); "
          f"search wall time {took:.0f} s for a {seconds:.0f} s budget ({took / seconds:.3f}x); "
          f"report {out / 'report.html'}")
    best = s["best"]["value"] if s["best"] else float("nan")
    print(f"search: best holdout top1 {best:.4f} vs demo recipe {demo['best']['top1']:.4f} at {epochs} epochs, "
          f"{took:.0f} s of {seconds:.0f} s")


if __name__ == "__main__":
    main()
