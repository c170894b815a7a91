"""Command line: parses arguments and calls library functions; no logic of its own."""
from __future__ import annotations

import argparse
import json
import sys

from tinyvision.errors import TinyVisionError

DATASET_NAMES = ["tiny-imagenet", "mnist", "fashion-mnist", "cifar10", "cifar100", "folder"]


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
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except TinyVisionError as e:
        print(f"tinyvision: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tinyvision: interrupted", file=sys.stderr)
        return 130
