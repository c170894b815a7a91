"""Transfer learning: depth groups, gradual unfreezing, discriminative learning rates, frozen
batch-norm statistics, and the feature cache of a frozen backbone.

A model is cut into depth groups, input to output, the classifier last: timm models by their own
`group_matcher` (stem, each stage, head), others by their top-level children. Unfreezing walks
these groups from the top; discriminative rates scale each group's lr by lr_decay ** (its
distance from the top).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tinyvision.atomic import replacing
from tinyvision.data.dataset import Split
from tinyvision.data.loader import BatchLoader
from tinyvision.errors import TinyVisionError
from tinyvision.models.pretrained import classifier_name


def depth_groups(model: nn.Module) -> list[list[str]]:
    """Lists of parameter names, from the input to the output; the classifier alone in the last."""
    head = classifier_name(model)
    names = [n for n, _ in model.named_parameters()]
    if hasattr(model, "group_matcher"):
        from timm.models import group_parameters

        grouped = group_parameters(model, model.group_matcher(coarse=True))
        groups = [list(v) for _, v in sorted(grouped.items())]
    else:
        groups, seen = [], set()
        for child, _ in model.named_children():
            g = [n for n in names if n.startswith(child + ".")]
            if g:
                groups.append(g)
                seen.update(g)
        if len(seen) != len(names):  # parameters registered directly on the model
            groups.append([n for n in names if n not in seen])
    body = [[n for n in g if not n.startswith(head + ".")] for g in groups]
    body = [g for g in body if g]
    return body + [[n for n in names if n.startswith(head + ".")]]


def group_of(model: nn.Module) -> dict[str, int]:
    """Parameter name -> distance of its group from the top (classifier 0)."""
    groups = depth_groups(model)
    return {n: len(groups) - 1 - i for i, g in enumerate(groups) for n in g}


def trainable_depth(epoch: int, unfreeze: list[int], mode: str, n_groups: int) -> int:
    """How many groups from the top train in `epoch` (0-based).

    gradual: the head alone until epoch unfreeze[0], then one more group at each listed epoch,
    and everything from the last listed epoch on ("head for k epochs, then the last stage, then all").
    features: the head only. full: everything."""
    if mode == "full":
        return n_groups
    if mode == "features":
        return 1
    passed = sum(epoch >= e for e in unfreeze)
    if unfreeze and passed == len(unfreeze):
        return n_groups
    return min(1 + passed, n_groups)


def set_trainable(model: nn.Module, depth: int) -> list[str]:
    """requires_grad on the top `depth` groups only; returns the trainable parameter names."""
    where = group_of(model)
    on = []
    for n, p in model.named_parameters():
        p.requires_grad_(where[n] < depth)
        if where[n] < depth:
            on.append(n)
    return on


def first_layers(model: nn.Module, n: int) -> set[str]:
    """Parameter names of the first `n` layers: modules holding parameters of their own (convs,
    norms, linears), in the order the model registers them, which is its forward order for the
    networks here. As Keras' "the first N layers", minus the layers without weights."""
    names = []
    for mod_name, m in model.named_modules():
        own = [f"{mod_name}.{p}" if mod_name else p for p, _ in m.named_parameters(recurse=False)]
        if own:
            names.append(own)
        if len(names) == n:
            break
    return {p for group in names for p in group}


def freeze_batchnorm(model: nn.Module, frozen_names: set[str] | None = None) -> None:
    """Put batch-norm layers in eval mode (running statistics kept); all of them, or those whose
    parameters are frozen when `frozen_names` is given. Call after model.train()."""
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if frozen_names is None or f"{name}.weight" in frozen_names:
                m.eval()


def param_groups_by_depth(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool, lr_decay: float) -> list[dict]:
    """Optimizer groups with `lr_scale` = lr_decay ** depth-from-top (Schedule multiplies it in),
    and no weight decay on norms and biases unless asked."""
    where = group_of(model)
    groups: dict[tuple[int, bool], dict] = {}
    for n, p in model.named_parameters():
        decay = decay_norm_and_bias or p.ndim > 1
        key = (where[n], decay)
        if key not in groups:
            groups[key] = {"params": [], "weight_decay": weight_decay if decay else 0.0,
                           "lr_scale": lr_decay ** where[n], "depth": where[n]}
        groups[key]["params"].append(p)
    return [groups[k] for k in sorted(groups)]


# ------------------------------------------------------------------ cached features
class FeatureExtractor:
    """Pooled features: the input of the classifier, captured by a forward pre-hook."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.head = model.get_submodule(classifier_name(model))

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        got = {}
        handle = self.head.register_forward_pre_hook(lambda mod, inp: got.setdefault("x", inp[0]))
        try:
            self.model(x)
        finally:
            handle.remove()
        return got["x"].flatten(1)


def features_key(model_name: str, weights: str, size: int, extra: str = "") -> str:
    """Cache key: the architecture, the weights (for a file: its path, size and mtime) and the input size."""
    stamp = weights
    p = Path(weights)
    if p.is_file():
        st = p.stat()
        stamp = f"{p.resolve()}:{st.st_size}:{int(st.st_mtime)}"
    return f"{model_name}-{size}px-" + hashlib.sha1(f"{stamp}|{extra}".encode()).hexdigest()[:12]


@torch.no_grad()
def cached_features(extract: FeatureExtractor, loader, path: Path, amp_dtype, progress=None) -> np.ndarray:
    """Features of every batch of `loader` (in order), computed once and stored as .npy at `path`
    (written to a temp file and renamed: a killed extraction leaves nothing that loads)."""
    if path.exists():
        return np.load(path)
    model = extract.model
    was_training = model.training
    model.eval()
    out = []
    device = loader.device
    loader.set_epoch(0)
    for x, _ in loader:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            f = extract(x)
        out.append(f.float().cpu().numpy())
        if progress is not None:
            progress(len(out), len(loader))
    model.train(was_training)
    feats = np.concatenate(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, ".npy") as tmp:
        np.save(tmp, feats)
    return feats


class HeadOnly(nn.Module):
    """The classifier of `model` on cached features shaped (N, D, 1, 1), as the loader yields them."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.head = model.get_submodule(classifier_name(model))

    def forward(self, x):
        return self.head(x.flatten(1))


def feature_splits(model, cfg, ds, train_split, val_split, eval_aug, device, amp_dtype, dist):
    """(train features split, val features split, head model) for transfer.mode=features."""
    extract = FeatureExtractor(model)
    size = cfg.augment.size or ds.image_size[0]
    key = features_key(cfg.model.name, cfg.transfer.pretrained or f"random-init-seed{cfg.train.seed}", size,
                       extra=f"{cfg.model.kwargs}|{cfg.transfer.normalize}|{amp_dtype}")
    out = []
    for split in (train_split, val_split):
        rows = hashlib.sha1(np.ascontiguousarray(split.rows).tobytes()).hexdigest()[:10]
        path = ds.path / "features" / key / f"{split.name}-{rows}.npy"
        loader = BatchLoader(split, cfg.train.eval_batch_size, shuffle=False, drop_last=False, device=device,
                             transform=eval_aug)
        if dist.enabled and not dist.main:
            dist.barrier()  # rank 0 extracts, the others read its file
        feats = cached_features(extract, loader, path, amp_dtype)
        if dist.enabled and dist.main:
            dist.barrier()
        out.append(Split(split.name, feats[:, None, None, :], np.asarray(split.targets)))
    head = HeadOnly(model)
    with torch.no_grad():  # the classifier must be the model's last step for head-only training to be exact
        x = eval_aug(torch.from_numpy(np.ascontiguousarray(val_split.images[val_split.rows[:4]])).permute(0, 3, 1, 2).to(device))
        was = model.training
        model.eval()
        full, via_head = model(x).float(), head(extract(x)).float()
        model.train(was)
    if not torch.allclose(full, via_head, atol=1e-4, rtol=1e-3):
        raise TinyVisionError(f"{cfg.model.name}: its classifier is not its last step, so transfer.mode=features "
                              "cannot train it on cached features; use transfer.mode=gradual")
    return out[0], out[1], head
