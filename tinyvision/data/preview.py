"""A labelled grid of samples, optionally each beside an augmented copy, as a PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tinyvision.data.augment import build_augment
from tinyvision.data.dataset import Dataset


def preview_grid(ds: Dataset, out: str | Path, *, split: str = "train", n: int = 32, augment: str | None = None,
                 seed: int = 0, cols: int = 8) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = ds.split(split)
    rng = np.random.default_rng(seed)
    rows_idx = np.sort(rng.choice(len(s), size=min(n, len(s)), replace=False))
    rows = s.rows[rows_idx]
    imgs = np.asarray(s.images[rows])  # (n, H, W, C)
    labels = np.asarray(s.labels)[rows]
    panels = [(img, ds.class_names[l] if l >= 0 else "(unlabeled)") for img, l in zip(imgs, labels)]
    if augment:
        c = ds.channels
        pol = build_augment(augment, (0.0,) * c, (1.0,) * c, image_size=ds.image_size[0])
        x = torch.from_numpy(imgs).permute(0, 3, 1, 2)
        aug = pol(x, torch.Generator().manual_seed(seed)).clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).numpy()
        panels = [p for (img, name), a in zip(panels, aug) for p in ((img, name), (a, f"{name} (aug)"))]
    cols = min(cols, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(cols * 1.6, nrows * 1.8), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (img, title) in zip(axes.flat, panels):
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None,
                  vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title[:22], fontsize=7)
    fig.suptitle(f"{ds.name} / {split}" + (f" / augment: {augment}" if augment else ""), fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
