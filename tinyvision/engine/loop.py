"""The step, the epoch and evaluation. Each takes few arguments and returns plain numbers."""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from tinyvision.engine.distributed import Dist
from tinyvision.metrics import confusion, iou_from_confusion
from tinyvision.models.outputs import split_outputs
from tinyvision.tta import log_mean_probs as tta_log_mean_probs


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def classification_loss(logits: torch.Tensor, y: torch.Tensor, soft: torch.Tensor | None, smoothing: float) -> torch.Tensor:
    logits = logits.float()
    if soft is not None:  # mixup / cutmix targets (label smoothing already folded in)
        return torch.sum(-soft * F.log_softmax(logits, dim=-1), dim=-1).mean()
    return F.cross_entropy(logits, y, label_smoothing=smoothing)


def train_loss(out, y, soft, smoothing: float, aux_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(total loss, main logits). Auxiliary heads add aux_weight times their loss."""
    logits, aux = split_outputs(out)
    loss = classification_loss(logits, y, soft, smoothing)
    for a in aux:
        loss = loss + aux_weight * classification_loss(a, y, soft, smoothing)
    return loss, logits


def topk_correct(logits: torch.Tensor, y: torch.Tensor, ks=(1, 5)) -> list[torch.Tensor]:
    """Hits at each k, with exact ties (common in bf16 logits) settled by a fixed rule, so that
    `tinyvision eval` reproduces these counts: top-1 is argmax (the first maximal class, as
    numpy's), top-k (k > 1) counts a hit when fewer than k classes score strictly higher."""
    out = []
    for k in ks:
        if k == 1:
            out.append(logits.argmax(dim=1).eq(y).sum())
        else:
            higher = (logits > logits.gather(1, y.view(-1, 1))).sum(dim=1)
            out.append((higher < k).sum())
    return out


def predict_logits(model: nn.Module, x: torch.Tensor, amp_dtype: torch.dtype | None, tta: str | None = None) -> torch.Tensor:
    """float32 logits of the main head; with tta ("flip", "flip-shift": tinyvision.tta), the log of
    the weighted mean of the views' probabilities (so argmax, top-k and the loss all see it)."""
    with autocast(x.device, amp_dtype):
        return tta_log_mean_probs(lambda v: split_outputs(model(v))[0], x, tta)


@torch.no_grad()
def evaluate(model: nn.Module, loader, amp_dtype: torch.dtype | None = None, dist: Dist | None = None,
             tta: str | None = None, max_batches: int | None = None) -> dict:
    """{'loss', 'top1', 'top5', 'n'} over the whole split (or its first `max_batches`); under DDP
    the ranks' shards are summed, and each sample lies in exactly one shard, so every image counts once."""
    was_training = model.training
    model.eval()
    device = loader.device
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss sum, top-1 hits, top-5 hits, n
    loader.set_epoch(0)
    for i, (x, y) in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        logits = predict_logits(model, x, amp_dtype, tta)
        c1, c5 = topk_correct(logits, y)
        sums += torch.stack([F.cross_entropy(logits, y, reduction="sum").double(), c1.double(), c5.double(),
                             torch.tensor(float(len(y)), dtype=torch.float64, device=device)])
    if dist is not None:
        dist.sum(sums)
    model.train(was_training)
    loss, c1, c5, n = sums.tolist()
    n = max(n, 1.0)
    return {"loss": loss / n, "top1": c1 / n, "top5": c5 / n, "n": int(n)}


# ----------------------------------------------------------------- segmentation
def segmentation_loss(out, y: torch.Tensor, smoothing: float, aux_weight: float, ignore: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-pixel cross-entropy over the pixels with a class, main logits (N, C, H, W))."""
    logits, aux = split_outputs(out)
    loss = F.cross_entropy(logits.float(), y, ignore_index=ignore, label_smoothing=smoothing)
    for a in aux:
        loss = loss + aux_weight * F.cross_entropy(a.float(), y, ignore_index=ignore, label_smoothing=smoothing)
    return loss, logits


def pixel_correct(logits: torch.Tensor, y: torch.Tensor, ignore: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(correctly classified pixels, pixels with a class)."""
    valid = y != ignore
    return (logits.argmax(1).eq(y) & valid).sum(), valid.sum()


def segment_logits(model: nn.Module, x: torch.Tensor, amp_dtype, tta: str | None = None) -> torch.Tensor:
    """float32 (N, C, H, W) log-probabilities; with tta "flip", of the mean of the image's and its mirror's."""
    with autocast(x.device, amp_dtype):  # flip only: check_task refuses shifted views for segmentation
        logits = split_outputs(model(x))[0].float()
        if not tta:
            return logits
        mirrored = split_outputs(model(x.flip(3)))[0].float().flip(3)
    return torch.logsumexp(torch.stack([logits.log_softmax(1), mirrored.log_softmax(1)]), 0) - math.log(2)


@torch.no_grad()
def evaluate_segmentation(model: nn.Module, loader, num_classes: int, ignore: int, amp_dtype=None,
                          dist: Dist | None = None, tta: str | None = None, max_batches: int | None = None) -> dict:
    """{'loss', 'miou', 'dice', 'pixel_acc', 'n', 'iou'} over the split: one confusion matrix of all
    its pixels (summed over DDP ranks), so mIoU is the dataset's, not a mean over images."""
    was_training = model.training
    model.eval()
    device = loader.device
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum over pixels, pixels, images
    loader.set_epoch(0)
    for i, (x, y) in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        logits = segment_logits(model, x, amp_dtype, tta)
        cm += confusion(logits.argmax(1), y, num_classes, ignore)
        valid = (y != ignore).sum()
        sums += torch.stack([F.cross_entropy(logits, y, ignore_index=ignore, reduction="sum").double(),
                             valid.double(), torch.tensor(float(len(y)), dtype=torch.float64, device=device)])
    if dist is not None:
        dist.sum(cm)
        dist.sum(sums)
    model.train(was_training)
    out = iou_from_confusion(cm.cpu())
    out.update(loss=float(sums[0] / sums[1].clamp(min=1)), n=int(sums[2]))
    return out
