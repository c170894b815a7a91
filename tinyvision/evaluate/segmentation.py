"""`tinyvision eval` for segmentation runs, and colour masks for `predict`.

Files under RUN_DIR/eval/<split>/: metrics.json (mIoU, Dice, pixel accuracy, loss; per-class IoU
and Dice), per_class.csv, confusion_matrix.csv / .png (pixels, rows = truth), and overlay
galleries (image | truth | prediction) of the images with the best and the worst mIoU.
Predictions are made exactly as the run's val passes made them (precision, layout, batch
size, resize), so the mIoU equals the run's own for the same checkpoint.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tinyvision.atomic import write_text
from tinyvision.data.augment import build_augment
from tinyvision.data.loader import BatchLoader
from tinyvision.device import precision_dtype
from tinyvision.errors import TinyVisionError
from tinyvision.evaluate import plots
from tinyvision.metrics import confusion, iou_from_confusion
from tinyvision.models.outputs import main_output
from tinyvision.runs import LoadedModel


def palette(n: int) -> np.ndarray:
    """(n + 1, 3) uint8 colours, one per class and black last for `ignore` (PASCAL VOC's bit-interleaved
    colour map: distinct neighbours, and VOC's own colours for VOC's classes)."""
    out = np.zeros((max(n, 1) + 1, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out[i] = (r, g, b)
    return out


def colorize(mask: np.ndarray, n: int, ignore: int) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) colours; ignored pixels black."""
    pal = palette(n)
    m = np.where(mask == ignore, n, np.clip(mask, 0, n))
    return pal[m]


@torch.no_grad()
def predict_masks(lm: LoadedModel, batches, tta: str | None = None):
    """For model-ready batches: (N, H, W) int64 predicted classes, and the (N, C, H, W) log-probabilities' loss inputs."""
    if tta not in (None, "flip"):
        raise TinyVisionError(f"segmentation takes test-time augmentation flip or none, not {tta!r}")
    model = lm.model
    device = next(model.parameters()).device
    dtype = precision_dtype(lm.record.precision)
    fmt = torch.channels_last if lm.record.channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    for x in batches:
        x = x.to(device).contiguous(memory_format=fmt)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = main_output(model(x)).float()
            if tta == "flip":
                mirrored = main_output(model(x.flip(3))).float().flip(3)
                logits = torch.logsumexp(torch.stack([logits.log_softmax(1), mirrored.log_softmax(1)]), 0) - np.log(2)
        yield logits


def evaluate_segmentation_loaded(lm: LoadedModel, ds, part, out: Path, tta: str | None = None,
                                 batch_size: int | None = None, gallery: int = 8) -> dict:
    r = lm.record
    out.mkdir(parents=True, exist_ok=True)
    n_cls, ignore = r.num_classes, r.ignore_index
    size = r.image_size if r.image_size != r.cache_size else None
    transform = build_augment("none", r.mean, r.std, ds.image_size[0], size, ignore=ignore)
    loader = BatchLoader(part, batch_size or r.eval_batch_size, shuffle=False, drop_last=False,
                         device=next(lm.model.parameters()).device, transform=transform)
    cm = torch.zeros(n_cls, n_cls, dtype=torch.int64)
    loss_sum, pixels, per_image = 0.0, 0, []
    result = {"split": part.name, "dataset": ds.name, "checkpoint": str(lm.checkpoint), "epoch": lm.epoch,
              "weights": lm.weights, "tta": tta, "n": len(part), "out": str(out), "task": "segmentation"}
    if part.masks is None:
        raise ValueError(f"{ds.name}'s {part.name} split has no masks to score")
    targets = []

    def batches():
        for x, y in loader:
            targets.append(y.cpu())
            yield x

    for logits in predict_masks(lm, batches(), tta):
        y = targets[-1].to(logits.device)
        pred = logits.argmax(1)
        cm += confusion(pred, y, n_cls, ignore).cpu()
        loss_sum += float(F.cross_entropy(logits, y, ignore_index=ignore, reduction="sum"))
        pixels += int((y != ignore).sum())
        for p_i, y_i in zip(pred, y):
            per_image.append(iou_from_confusion(confusion(p_i, y_i, n_cls, ignore).cpu())["miou"])
    m = iou_from_confusion(cm)
    result.update(miou=m["miou"], dice=m["dice"], pixel_acc=m["pixel_acc"], loss=loss_sum / max(pixels, 1),
                  per_class={name: {"iou": iou, "dice": d} for name, iou, d in zip(r.class_names, m["iou"], m["class_dice"])})
    with open(out / "per_class.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["class", "iou", "dice", "pixels"])
        for i, name in enumerate(r.class_names):
            w.writerow([name, m["iou"][i], m["class_dice"][i], int(cm[i].sum())])
    with open(out / "confusion_matrix.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted", *r.class_names])
        for i, row in enumerate(cm.tolist()):
            w.writerow([r.class_names[i], *row])
    plots.confusion_png(cm.numpy(), list(r.class_names), np.arange(n_cls), out / "confusion_matrix.png")
    order = np.argsort(per_image, kind="stable")
    for kind, idx in (("best", order[::-1][:gallery]), ("worst", order[:gallery])):
        _overlays(lm, loader, part, idx, [per_image[i] for i in idx], out / f"{kind}_overlays.png", tta,
                  f"{kind} mIoU first ({len(idx)} shown)")
    result["files"] = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    write_text(out / "metrics.json", json.dumps(result, indent=2))
    return result


def _overlays(lm, loader, part, idx, scores, path: Path, tta, title: str) -> None:
    """A row per image: the image, its true mask, the predicted mask (colours per class)."""
    r = lm.record
    if not len(idx):
        plots.gallery_png(np.zeros((0, 1, 1, 3), np.uint8), [], [], title, path)
        return
    rows = part.rows[np.asarray(idx)]
    x = torch.from_numpy(np.asarray(part.images[np.sort(rows)]))[np.argsort(np.argsort(rows))]
    y = torch.from_numpy(np.asarray(part.masks[np.sort(rows)]).astype(np.int64))[np.argsort(np.argsort(rows))]
    xin, yin = loader.transform(x.permute(0, 3, 1, 2), None, y)
    pred = next(predict_masks(lm, [xin], tta)).argmax(1).cpu().numpy()
    img = np.asarray(torch.nn.functional.interpolate(x.permute(0, 3, 1, 2).float(), size=pred.shape[-2:],
                                                     mode="bilinear", align_corners=False).round().clamp(0, 255)
                     .byte().permute(0, 2, 3, 1))
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, -1)
    panels, caps = [], []
    for i in range(len(idx)):
        truth = colorize(yin[i].numpy(), r.num_classes, r.ignore_index)
        guess = colorize(pred[i], r.num_classes, r.ignore_index)
        panels.append(np.concatenate([img[i], truth, guess], axis=1))
        caps.append(f"image | truth | prediction  mIoU {scores[i]:.2f}")
    plots.gallery_png(np.stack(panels), caps, ["black"] * len(panels), title, path, cols=2)


def predict_mask_files(lm: LoadedModel, paths, out_dir, tta: str | None = None) -> tuple[list[Path], dict]:
    """Colour masks (PNG, the palette of `palette`) for image files of any size: each is resized to
    the run's input for the model and its prediction back to the image's own size (nearest).
    Returns (written files, {path: error} for files that could not be read)."""
    from PIL import Image

    from tinyvision.data.decode import decode_bytes
    from tinyvision.evaluate.inference import expand_paths

    r = lm.record
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    resized = r.image_size != r.cache_size or not r.cache_shape  # augment.size: a square input
    h, w = (r.image_size, r.image_size) if resized else r.cache_shape
    transform = build_augment("none", r.mean, r.std, r.cache_size, None, ignore=r.ignore_index or 255)
    written, bad = [], {}
    for p in expand_paths(paths):
        try:
            img = Image.open(p)
            img.load()
            full = img.size
            arr = decode_bytes(p.read_bytes(), r.in_chans, (h, w))
        except Exception as e:
            bad[p] = f"not a readable image ({type(e).__name__}: {e})"
            continue
        x = transform(torch.from_numpy(np.array(arr[None])).permute(0, 3, 1, 2))
        pred = next(predict_masks(lm, [x], tta)).argmax(1)[0].cpu().numpy().astype(np.uint8)
        mask = Image.fromarray(colorize(pred, r.num_classes, r.ignore_index or 255)).resize(full, Image.NEAREST)
        target = out_dir / f"{p.stem}_mask.png"
        mask.save(target)
        written.append(target)
    return written, bad
