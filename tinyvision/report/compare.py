"""`tinyvision compare RUN_DIR... --out report.html`: one self-contained page comparing runs.

Reads only run dirs (metrics.jsonl, summary.json, config.yaml, run.json), so it
works on finished runs, runs still in progress, and runs of different datasets (one section per
dataset). Figures are PNG files beside the page and embedded in it as data URIs.
"""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tinyvision.atomic import write_text  # noqa: E402
from tinyvision.errors import TinyVisionError  # noqa: E402
from tinyvision.runs import read_config, read_metrics, read_record, read_summary  # noqa: E402


def overfit_epoch(epochs: list[dict]) -> int | None:
    """The epoch after which val loss rises while train loss keeps falling, or None.

    It is the epoch of lowest val loss, when a later epoch has both a higher val loss and a lower
    train loss than it had (a rise from noise alone, with train loss flat, is not marked)."""
    val = [e.get("val_loss") for e in epochs]
    if len(val) < 2 or any(v is None for v in val):
        return None
    m = min(range(len(val)), key=val.__getitem__)
    later = epochs[m + 1 :]
    if any(e["val_loss"] > val[m] and e["train_loss"] < epochs[m]["train_loss"] for e in later):
        return epochs[m]["epoch"]
    return None


def run_row(run_dir) -> dict:
    """One run as the page shows it: its curves, its best and final figures, its cost."""
    d = Path(run_dir)
    cfg, summary, metrics, record = read_config(d), read_summary(d), read_metrics(d), read_record(d)
    epochs = [m for m in metrics if m.get("type") == "epoch"]
    steps = [m for m in metrics if m.get("type") == "step"]
    data = cfg.get("data", {})
    # the run's main metric: top-1, or mean IoU for segmentation; second: top-5, or pixel accuracy
    seg = any("val_miou" in e for e in epochs)
    k1, k2 = ("val_miou", "val_pixel_acc") if seg else ("val_top1", "val_top5")
    scored = [e for e in epochs if k1 in e]  # with train.eval_every, not every epoch has a val pass
    best = max(scored, key=lambda e: e[k1]) if scored else None
    total = cfg.get("train", {}).get("epochs")
    return {
        "dir": d, "label": d.name, "dataset": record.dataset if record else data.get("name", "?"),
        "model": record.model if record else cfg.get("model", {}).get("name", "?"),
        "status": "finished" if summary else (f"in progress ({len(epochs)}/{total} epochs)" if epochs else "starting"),
        "epochs": epochs, "steps": steps, "summary": summary,
        "params": record.params if record else None, "macs": record.macs if record else None,
        "segmentation": seg,
        "best_top1": best[k1] if best else None, "best_top5": best[k2] if best else None,
        "best_epoch": best["epoch"] if best else None,
        "final_top1": scored[-1][k1] if scored else None, "final_top5": scored[-1][k2] if scored else None,
        "wall_time_s": (summary or {}).get("wall_time_s") or sum(e["seconds"] for e in epochs),
        "images_per_s": (summary or {}).get("images_per_s") or (epochs[-1]["images_per_s"] if epochs else None),
        "overfit_epoch": overfit_epoch(scored),
        "val_split": record.val_split if record else data.get("val_split") or "val",
    }


def _fig_lines(records, key_x, key_y, source, title, ylabel, path, mark_overfit=False):
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for r in records:
        pts = [(p[key_x], p[key_y]) for p in r[source] if p.get(key_y) is not None]
        if not pts:
            continue
        xs, ys = zip(*pts)
        line, = ax.plot(xs, ys, marker="o" if source == "epochs" and len(xs) < 40 else None, ms=3, label=r["label"])
        if mark_overfit and r["overfit_epoch"] is not None:
            e = r["overfit_epoch"]
            y = next(p[key_y] for p in r[source] if p[key_x] == e)
            ax.axvline(e, color=line.get_color(), ls=":", lw=1)
            ax.annotate("overfits after", (e, y), textcoords="offset points", xytext=(4, 8), fontsize=7,
                        color=line.get_color())
    ax.set_title(title)
    ax.set_xlabel("step" if key_x == "step" else "epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no data logged yet", ha="center", va="center", transform=ax.transAxes)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _fig_bars(records, path, metric="val top-1"):
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(records) + 1.5))
    labels = [r["label"] for r in records]
    vals = [r["best_top1"] or 0.0 for r in records]
    bars = ax.barh(labels, vals, color="tab:blue")
    for b, v in zip(bars, vals):
        ax.text(v, b.get_y() + b.get_height() / 2, f" {v:.4f}", va="center", fontsize=8)
    ax.set_xlim(0, min(1.0, max(vals + [0.01]) * 1.15))
    ax.set_xlabel(f"best {metric}")
    ax.set_title(f"best {metric} per run")
    ax.invert_yaxis()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _fmt(v, kind="f"):
    if v is None:
        return "–"
    if kind == "int":
        return f"{v:,}"
    if kind == "M":
        return f"{v / 1e6:,.1f} M"
    if kind == "s":
        return f"{v:,.0f} s"
    return f"{v:.4f}"


def compare_runs(run_dirs, out) -> dict:
    """Write the HTML page (and its PNGs beside it). Returns {'html', 'images', 'groups'}."""
    if not run_dirs:
        raise TinyVisionError("compare needs at least one run dir")
    records = [run_row(d) for d in run_dirs]
    names = [r["label"] for r in records]
    for r in records:  # same dir name in different places (seed0, seed0): say which
        if names.count(r["label"]) > 1:
            r["label"] = f"{r['dir'].parent.name}/{r['dir'].name}"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.stem
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(r["dataset"], []).append(r)
    sections, images = [], []
    for ds, recs in groups.items():
        tag = re.sub(r"[^A-Za-z0-9_-]", "_", ds)
        seg = any(r["segmentation"] for r in recs)
        main, label = ("val_miou", "val mIoU") if seg else ("val_top1", "val top-1")
        m1, m2 = ("mIoU", "pixel acc.") if seg else ("top-1", "top-5")
        figs = [
            _fig_lines(recs, "step", "train_loss", "steps", f"{ds}: training loss per logged step", "train loss",
                       out.parent / f"{stem}-{tag}-train_loss.png"),
            _fig_lines(recs, "epoch", "val_loss", "epochs", f"{ds}: val loss per epoch (dotted: overfitting starts)",
                       "val loss", out.parent / f"{stem}-{tag}-val_loss.png", mark_overfit=True),
            _fig_lines(recs, "epoch", main, "epochs", f"{ds}: {label} per epoch", label,
                       out.parent / f"{stem}-{tag}-{main}.png"),
            _fig_lines(recs, "epoch", "train_top1", "epochs", f"{ds}: training accuracy per epoch (augmented batches)",
                       "train top-1", out.parent / f"{stem}-{tag}-train_top1.png"),
            _fig_bars(recs, out.parent / f"{stem}-{tag}-best_top1.png", label),
        ]
        images += figs
        rows = "".join(
            "<tr>" + "".join(f"<td>{c}</td>" for c in (
                html.escape(r["label"]), html.escape(r["model"]), _fmt(r["params"], "int"), _fmt(r["macs"], "M"),
                len(r["epochs"]), _fmt(r["best_top1"]), _fmt(r["best_top5"]), _fmt(r["final_top1"]),
                _fmt(r["final_top5"]), _fmt(r["wall_time_s"], "s"),
                f"{r['images_per_s']:,.0f}" if r["images_per_s"] else "–",
                f"after epoch {r['overfit_epoch']}" if r["overfit_epoch"] else "–", html.escape(r["status"]))) + "</tr>"
            for r in recs)
        imgs = "".join(f'<figure><img alt="{html.escape(p.stem)}" src="data:image/png;base64,'
                       f'{base64.b64encode(p.read_bytes()).decode()}"></figure>' for p in figs)
        sections.append(f"""<section><h2>{html.escape(ds)} <small>({len(recs)} run{'s' if len(recs) > 1 else ''},
val split: {html.escape(', '.join(sorted({r['val_split'] for r in recs})))})</small></h2>
<table><thead><tr><th>run</th><th>model</th><th>params</th><th>MACs</th><th>epochs</th><th>best {m1}</th>
<th>best {m2}</th><th>final {m1}</th><th>final {m2}</th><th>wall time</th><th>images/s</th><th>overfits</th>
<th>status</th></tr></thead><tbody>{rows}</tbody></table>
<div class="figs">{imgs}</div></section>""")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tinyvision compare</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child, td:nth-child(2), td:last-child {{ text-align: left; }}
.figs {{ display: flex; flex-wrap: wrap; gap: 1em; margin-top: 1em; }} figure {{ margin: 0; }}
img {{ max-width: 100%; }} small {{ color: #666; font-weight: normal; }}
</style></head>
<body data-images="pending">
<h1>tinyvision: {len(records)} runs compared</h1>
<p>Accuracies are fractions on each run's val split. MACs per image at the run's input size.
Runs: {html.escape(', '.join(str(r['dir']) for r in records))}</p>
{''.join(sections)}
<script>
window.addEventListener("load", function () {{
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.every(function (i) {{ return i.complete && i.naturalWidth > 0; }});
  document.body.dataset.images = (ok ? "ok " : "broken ") + imgs.length;
}});
</script>
</body></html>
"""
    write_text(out, page)
    return {"html": str(out), "images": [str(p) for p in images], "groups": list(groups)}
