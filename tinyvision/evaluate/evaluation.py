"""`tinyvision eval`: a run's checkpoint on a split -> metrics and figures under RUN_DIR/eval/<split>/."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch

from tinyvision.atomic import write_text
from tinyvision.data import Dataset, cache_root, prepare
from tinyvision.errors import TinyVisionError
from tinyvision.evaluate import metrics as M
from tinyvision.evaluate import plots
from tinyvision.evaluate.inference import predict_split
from tinyvision.runs import LoadedModel, RunRecord, load_model


def open_dataset(record: RunRecord, dataset: str | None, source: str | None, cache_dir: str | None = None):
    """The dataset to evaluate on: another copy (`source`), else the run's own cache, else its source."""
    if source is None and dataset is None and record.cache and Path(record.cache, "meta.json").exists():
        return Dataset.load(Path(record.cache))
    return prepare(dataset or record.dataset, source if source is not None else record.source,
                   image_size=record.prepare_size, cache_dir=cache_dir or record.cache_dir, progress=False)


def class_mapping(run_ids: list[str], data_ids: list[str], where: str) -> np.ndarray:
    """For each class index of the data, the run's index of the same class id (never by position)."""
    index = {c: i for i, c in enumerate(run_ids)}
    missing = [c for c in data_ids if c not in index]
    if missing:
        raise TinyVisionError(f"{where}: {len(missing)} of its {len(data_ids)} classes are unknown to the model "
                              f"(e.g. {', '.join(missing[:5])}); classes are matched by id, and this data's ids "
                              f"are not the model's")
    return np.array([index[c] for c in data_ids], dtype=np.int64)


def evaluate_run(run_dir, split: str = "val", *, dataset: str | None = None, source: str | None = None,
                 checkpoint: str = "best", tta: str | None = "run", device: str = "cpu", out_dir=None,
                 batch_size: int | None = None, gallery: int = 32) -> dict:
    """Evaluate a run's checkpoint and write the report files. Returns {'top1', 'top5', 'loss', 'n', ...}.
    tta: "run" evaluates as the run's final evaluation did (train.tta), "flip" or None choose."""
    run_dir = Path(run_dir)
    lm = load_model(run_dir, checkpoint, device)
    tta = lm.record.resolve_tta(tta)
    ds = open_dataset(lm.record, dataset, source)
    part = ds.eval_split(split, holdout=lm.record.holdout, seed=lm.record.split_seed)
    out = Path(out_dir) if out_dir else run_dir / "eval" / part.name
    if lm.record.task == "segmentation":
        from tinyvision.evaluate.segmentation import evaluate_segmentation_loaded

        return evaluate_segmentation_loaded(lm, ds, part, out, tta=tta, batch_size=batch_size, gallery=min(gallery, 8))
    return evaluate_loaded(lm, ds, part, out, tta=tta, batch_size=batch_size, gallery=gallery)


def evaluate_pretrained(model_name: str, weights: str, dataset: str, source: str | None = None, split: str = "val",
                        input_size: int | None = None, device: str = "cpu", out_dir=None, cache_dir=None,
                        tta: str | None = None, gallery: int = 32) -> dict:
    """Zero-shot: an ImageNet-1k model on a dataset whose classes are ImageNet classes, its 1000
    logits restricted to the dataset's classes by wnid. A wrong weight port shows as near-chance."""
    from tinyvision.device import PROBE_RECORD, precision_name, resolve_channels_last, resolve_precision
    from tinyvision.models import create_model, get_entry
    from tinyvision.models.summary import count_params
    from tinyvision.models.pretrained import imagenet_wnids, load_pretrained

    ds = prepare(dataset, source, cache_dir=cache_dir, progress=False)
    index = {w: i for i, w in enumerate(imagenet_wnids())}
    missing = [c for c in ds.class_ids if c not in index]
    if missing:
        raise TinyVisionError(f"{ds.name}: {len(missing)} of its classes are not ImageNet-1k wnids (e.g. "
                              f"{', '.join(missing[:3])}); zero-shot needs every class to be one")
    norm = get_entry(model_name).normalization or {"mean": ds.mean, "std": ds.std}
    model = create_model(model_name, num_classes=1000, in_chans=3)
    loaded = load_pretrained(model, weights, model_name=model_name)
    size = input_size or ds.image_size[0]
    dev = torch.device(device)
    amp = resolve_precision("auto", dev, probe_record=cache_root(cache_dir) / PROBE_RECORD)
    record = RunRecord(dataset=ds.name, model=model_name, num_classes=ds.num_classes, in_chans=3,
                       class_ids=list(ds.class_ids), class_names=list(ds.class_names), mean=list(norm["mean"]),
                       std=list(norm["std"]), image_size=size, cache_size=ds.image_size[0],
                       params=count_params(model), precision=precision_name(amp),
                       channels_last=resolve_channels_last("auto", dev, amp), eval_batch_size=100,
                       cache=str(ds.path), pretrained=loaded["source"], pretrained_head=loaded["head"])
    restricted = _Restrict(model, [index[c] for c in ds.class_ids]).to(dev).eval()
    lm = LoadedModel(restricted, record, Path(loaded["source"]), 0, 0, "pretrained")
    part = ds.eval_split(split)
    out = Path(out_dir) if out_dir else Path("runs") / f"zeroshot-{model_name}-{size}px" / "eval" / part.name
    res = evaluate_loaded(lm, ds, part, out, tta=tta, gallery=gallery)
    res.update({"model": model_name, "weights_file": loaded["source"], "input_size": size})
    _write_json(out / "metrics.json", res)
    return res


class _Restrict(torch.nn.Module):
    def __init__(self, model, rows):
        super().__init__()
        self.model = model
        self.register_buffer("rows", torch.tensor(rows), persistent=False)

    def forward(self, x):
        return self.model(x)[:, self.rows]


def evaluate_loaded(lm, ds, part, out: Path, tta: str | None = None, batch_size: int | None = None,
                    gallery: int = 32) -> dict:
    """The metrics and files for a loaded model on one split of a dataset."""
    out.mkdir(parents=True, exist_ok=True)
    names = list(lm.record.class_names)
    probs = predict_split(lm, part, ds.image_size[0], batch_size, tta)
    pred = probs.argmax(axis=1)
    files = _files(part)
    result = {"split": part.name, "dataset": ds.name, "checkpoint": str(lm.checkpoint), "epoch": lm.epoch,
              "weights": lm.weights, "tta": tta, "n": int(len(pred)), "out": str(out)}

    if not part.labeled:  # Tiny ImageNet's test: predictions only
        _write_predictions(out / "predictions.csv", files, probs, lm.record, None)
        result["files"] = ["predictions.csv"]
        _write_json(out / "metrics.json", result)
        return result

    mapping = class_mapping(lm.record.class_ids, list(ds.class_ids), f"{ds.name} ({ds.path})")
    y = mapping[part.targets]
    c = len(names)
    cm = M.confusion_matrix(y, pred, c)
    report = M.classification_report(cm, names)
    cal = M.calibration(probs, y)
    pairs = M.most_confused(cm, names, k=20)
    result.update({"top1": M.topk_accuracy(probs, y, 1), "top5": M.topk_accuracy(probs, y, 5),
                   "loss": M.nll(probs, y), "ece": cal["ece"], "macro_f1": report["macro avg"]["f1"],
                   "weighted_f1": report["weighted avg"]["f1"]})

    _write_predictions(out / "predictions.csv", files, probs, lm.record, y)
    (out / "classification_report.txt").write_text(M.format_report(report, names) + "\n")
    _write_json(out / "classification_report.json", report)
    with open(out / "confusion_matrix.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted", *names])
        for i, row in enumerate(cm):
            w.writerow([names[i], *row.tolist()])
    with open(out / "most_confused.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["true", "predicted", "count", "share"])
        w.writeheader()
        w.writerows(pairs)
    plots.confusion_png(cm, names, M.cluster_order(cm), out / "confusion_matrix.png")
    plots.reliability_png(cal, out / "reliability.png")
    _galleries(part, y, probs, names, out, gallery)
    result["most_confused"] = pairs[:10]
    result["calibration"] = {k: cal[k] for k in ("edges", "count", "accuracy", "confidence")}
    result["files"] = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    _write_json(out / "metrics.json", result)
    return result


def _files(part) -> list[str]:
    if part.files is None:
        return [f"{part.name}[{i}]" for i in part.rows]
    return [part.files[i] for i in part.rows]


def _write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2))


def _write_predictions(path: Path, files, probs, record: RunRecord, y, k: int = 5) -> None:
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    ids, names = record.class_ids, record.class_names
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        head = ["file"] + (["true_id", "true_name"] if y is not None else [])
        for j in range(k):
            head += [f"top{j + 1}_id", f"top{j + 1}_name", f"top{j + 1}_prob"]
        w.writerow(head)
        for i, fname in enumerate(files):
            row = [fname] + ([ids[y[i]], names[y[i]]] if y is not None else [])
            for j in top[i]:
                row += [ids[j], names[j], f"{probs[i, j]:.6f}"]
            w.writerow(row)


def _galleries(part, y, probs, names, out: Path, n: int) -> None:
    """Most confident successes, and most confident failures (the instructive mistakes)."""
    pred, conf = probs.argmax(axis=1), probs.max(axis=1)
    rows = part.rows
    for kind, mask, color in (("success", pred == y, "darkgreen"), ("failure", pred != y, "darkred")):
        idx = np.flatnonzero(mask)
        idx = idx[np.argsort(-conf[idx], kind="stable")][:n]
        images = np.asarray(part.images[np.sort(rows[idx])])  # memmap gathers want increasing rows
        order = np.argsort(np.argsort(rows[idx], kind="stable"), kind="stable")
        images = images[order] if len(idx) else np.zeros((0, 1, 1, 1), np.uint8)
        caps = [f"true: {names[y[i]][:18]}\npred: {names[pred[i]][:18]}\n{conf[i]:.2f}" for i in idx]
        title = {"success": "correct, most confident first", "failure": "wrong, most confident first"}[kind]
        plots.gallery_png(images, caps, [color] * len(idx), f"{title} ({len(idx)} shown)", out / f"{kind}_gallery.png")
