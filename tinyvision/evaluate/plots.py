"""Evaluation figures as PNG files: confusion matrix, reliability diagram, image galleries."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tinyvision.atomic import replacing  # noqa: E402


def _save(fig, path: Path, dpi: int = 110) -> Path:
    with replacing(path, ".png") as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def confusion_png(cm: np.ndarray, class_names: list[str], order: np.ndarray, path: Path) -> Path:
    """Row-normalized confusion (recall on the diagonal), classes ordered so confusions cluster.

    Up to 60 classes every name is written; beyond, names shrink with the figure growing to
    about 0.09 inch per class, so 200 classes stay legible when zoomed."""
    c = len(class_names)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    rates = rates[np.ix_(order, order)]
    side = min(max(6.0, 0.09 * c + 3), 24.0)
    fig, ax = plt.subplots(figsize=(side, side))
    # square-root colour scale: small confusion rates stay visible beside a bright diagonal
    im = ax.imshow(np.sqrt(rates), cmap="magma_r", vmin=0, vmax=1, interpolation="nearest")
    names = [class_names[i] for i in order]
    font = 9 if c <= 20 else 7 if c <= 60 else max(2.5, 500 / c)
    ax.set_xticks(range(c), names, rotation=90, fontsize=font)
    ax.set_yticks(range(c), names, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if c <= 20:
        for i in range(c):
            for j in range(c):
                if rates[i, j] >= 0.005:
                    ax.text(j, i, f"{rates[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if rates[i, j] > 0.5 else "black")
    cb = fig.colorbar(im, ax=ax, fraction=0.03)
    ticks = np.array([0, 0.01, 0.05, 0.2, 0.5, 1.0])
    cb.set_ticks(np.sqrt(ticks), labels=[f"{t:g}" for t in ticks])
    cb.set_label("share of the true class (sqrt scale)")
    ax.set_title(f"confusion matrix, {c} classes, row-normalized, clustered order")
    return _save(fig, path, dpi=150 if c > 60 else 110)


def reliability_png(cal: dict, path: Path) -> Path:
    edges = np.array(cal["edges"])
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    count = np.array(cal["count"])
    acc = np.array(cal["accuracy"])
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(5, 6), height_ratios=[3, 1], sharex=True)
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.bar(centers[count > 0], acc[count > 0], width=width * 0.95, color="tab:blue", label="accuracy in bin")
    ax.bar(centers[count > 0], (np.array(cal["confidence"]) - acc)[count > 0], bottom=acc[count > 0],
           width=width * 0.95, color="tab:red", alpha=0.3, label="gap to confidence")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"reliability diagram, ECE {cal['ece']:.4f}")
    ax.legend(loc="upper left", fontsize=8)
    ax2.bar(centers, count, width=width * 0.95, color="gray")
    ax2.set_xlabel("confidence (max probability)")
    ax2.set_ylabel("images")
    ax2.set_xlim(0, 1)
    return _save(fig, path)


def gallery_png(images: np.ndarray, captions: list[str], colors: list[str], title: str, path: Path, cols: int = 8) -> Path:
    """A grid of uint8 (N, H, W, C) images with a caption under each."""
    n = len(images)
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.7, rows * 2.0), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            img = images[k]
            ax.imshow(img[:, :, 0] if img.shape[2] == 1 else img, cmap="gray" if img.shape[2] == 1 else None,
                      interpolation="nearest")
            ax.set_title(captions[k], fontsize=6.5, color=colors[k])
    if n == 0:
        axes.flat[0].text(0.5, 0.5, "none", ha="center", va="center")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)
