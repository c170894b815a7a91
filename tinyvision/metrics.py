"""Segmentation metrics that training (val passes) and evaluation (`tinyvision eval`) both compute:
one definition, so that eval reproduces the run's own mIoU."""
from __future__ import annotations

import torch


def confusion(pred: torch.Tensor, y: torch.Tensor, num_classes: int, ignore: int) -> torch.Tensor:
    """(C, C) int64 counts of (true, predicted) over the pixels with a class."""
    valid = y != ignore
    idx = y[valid] * num_classes + pred[valid]
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)


def iou_from_confusion(cm) -> dict:
    """mean IoU over the classes present (in truth or prediction), per-class IoU and Dice, pixel accuracy."""
    cm = cm.double() if isinstance(cm, torch.Tensor) else torch.as_tensor(cm, dtype=torch.float64)
    tp = cm.diag()
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    present = (tp + fp + fn) > 0
    iou = torch.where(present, tp / (tp + fp + fn).clamp(min=1), torch.full_like(tp, float("nan")))
    dice = torch.where(present, 2 * tp / (2 * tp + fp + fn).clamp(min=1), torch.full_like(tp, float("nan")))
    return {"miou": float(iou[present].mean()) if present.any() else 0.0,
            "dice": float(dice[present].mean()) if present.any() else 0.0,
            "pixel_acc": float(tp.sum() / cm.sum().clamp(min=1)),
            "iou": iou.tolist(), "class_dice": dice.tolist()}
