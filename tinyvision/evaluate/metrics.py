"""Classification metrics from labels and probabilities, in numpy: no model, no files.

Definitions follow scikit-learn's classification_report: precision = TP / predicted, recall =
TP / support, F1 their harmonic mean, 0 where a denominator is 0 (a class never predicted has
precision 0); macro = unweighted mean over classes, weighted = mean weighted by support.
"""
from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[t, p]: images of true class t predicted as p."""
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _div(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def per_class(cm: np.ndarray) -> dict:
    """{'precision', 'recall', 'f1', 'support'} arrays, one entry per class."""
    tp = np.diag(cm).astype(np.float64)
    precision = _div(tp, cm.sum(axis=0))
    recall = _div(tp, cm.sum(axis=1))
    f1 = _div(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": cm.sum(axis=1)}


def classification_report(cm: np.ndarray, class_names: list[str]) -> dict:
    """Per-class rows plus 'macro avg' and 'weighted avg', like scikit-learn's output_dict=True."""
    pc = per_class(cm)
    support = pc["support"]
    total = support.sum()
    report = {name: {k: float(pc[k][i]) if k != "support" else int(support[i]) for k in pc}
              for i, name in enumerate(class_names)}
    report["accuracy"] = float(np.trace(cm) / total) if total else 0.0
    report["macro avg"] = {k: float(pc[k].mean()) for k in ("precision", "recall", "f1")} | {"support": int(total)}
    w = support / total if total else np.zeros_like(support, dtype=np.float64)
    report["weighted avg"] = {k: float((pc[k] * w).sum()) for k in ("precision", "recall", "f1")} | {"support": int(total)}
    return report


def format_report(report: dict, class_names: list[str], digits: int = 4) -> str:
    width = max([len(n) for n in class_names] + [len("weighted avg")])
    head = f"{'':>{width}s} {'precision':>10s} {'recall':>10s} {'f1-score':>10s} {'support':>8s}"
    lines = [head, ""]
    for name in class_names:
        r = report[name]
        lines.append(f"{name:>{width}s} {r['precision']:10.{digits}f} {r['recall']:10.{digits}f} "
                     f"{r['f1']:10.{digits}f} {r['support']:8d}")
    lines.append("")
    total = report["macro avg"]["support"]
    lines.append(f"{'accuracy':>{width}s} {'':10s} {'':10s} {report['accuracy']:10.{digits}f} {total:8d}")
    for avg in ("macro avg", "weighted avg"):
        r = report[avg]
        lines.append(f"{avg:>{width}s} {r['precision']:10.{digits}f} {r['recall']:10.{digits}f} "
                     f"{r['f1']:10.{digits}f} {r['support']:8d}")
    return "\n".join(lines)


def topk_accuracy(probs: np.ndarray, y_true: np.ndarray, k: int) -> float:
    """Top-1: argmax (first maximal class). Top-k: fewer than k classes score strictly higher than
    the true one. The engine counts the same way, so exact ties give the same numbers in both."""
    if not len(y_true):
        return 0.0
    if k == 1:
        return float((probs.argmax(axis=1) == y_true).mean())
    higher = (probs > probs[np.arange(len(y_true)), y_true][:, None]).sum(axis=1)
    return float((higher < k).mean())


def nll(probs: np.ndarray, y_true: np.ndarray) -> float:
    """Mean cross-entropy of the true class, from probabilities (clipped away from 0)."""
    p = probs[np.arange(len(y_true)), y_true]
    return float(-np.log(np.clip(p, 1e-12, None)).mean()) if len(y_true) else 0.0


def calibration(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> dict:
    """Expected calibration error over equal-width confidence bins (Guo et al. 2017), and the bins.

    ECE = sum over bins of (bin size / n) * |accuracy in bin - mean confidence in bin|."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    acc = _div(np.bincount(which, weights=correct, minlength=bins), count)
    mean_conf = _div(np.bincount(which, weights=conf, minlength=bins), count)
    n = max(len(y_true), 1)
    ece = float((count / n * np.abs(acc - mean_conf)).sum())
    return {"ece": ece, "edges": edges.tolist(), "count": count.tolist(), "accuracy": acc.tolist(),
            "confidence": mean_conf.tolist()}


def most_confused(cm: np.ndarray, class_names: list[str], k: int = 20) -> list[dict]:
    """The k largest off-diagonal cells: (true, predicted, count, share of the true class)."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:k]
    rows = []
    for idx in flat:
        t, p = divmod(int(idx), cm.shape[1])
        if off[t, p] == 0:
            break
        rows.append({"true": class_names[t], "predicted": class_names[p], "count": int(off[t, p]),
                     "share": float(off[t, p] / max(cm[t].sum(), 1))})
    return rows


def cluster_order(cm: np.ndarray) -> np.ndarray:
    """A class order that puts classes that are confused with each other next to each other.

    Spectral ordering: sort classes by the Fiedler vector of the graph whose edge weights are the
    symmetrized, row-normalized confusions. Cheap (one eigendecomposition of C x C) and numpy-only."""
    c = cm.shape[0]
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    w = rates + rates.T
    np.fill_diagonal(w, 0)
    w += 1e-6  # keeps the graph connected, so the ordering is defined
    np.fill_diagonal(w, 0)
    lap = np.diag(w.sum(axis=1)) - w
    _, vecs = np.linalg.eigh(lap)
    fiedler = vecs[:, 1] if c > 1 else np.zeros(c)
    return np.argsort(fiedler, kind="stable")
