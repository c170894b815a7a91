"""`tinyvision search report STUDY_DIR`: leaderboard and Optuna's plots on one HTML page."""
from __future__ import annotations

import base64
import html
import json
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402

from tinyvision.atomic import write_text  # noqa: E402
from tinyvision.errors import TinyVisionError  # noqa: E402
from tinyvision.runs import read_record  # noqa: E402
from tinyvision.search.study import open_study, summary_of  # noqa: E402


def _save(ax, path: Path) -> Path:
    """Optuna's matplotlib plots return an Axes; save its figure."""
    fig = ax.figure
    fig.set_size_inches(8, 4.5)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _plots(study: optuna.Study, out: Path, stem: str) -> list[Path]:
    from optuna.visualization import matplotlib as ovm

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    figs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
        figs.append(_save(ovm.plot_optimization_history(study), out / f"{stem}-history.png"))
        if len(done) >= 2 and len({k for t in done for k in t.params}) >= 1:
            try:
                figs.append(_save(ovm.plot_param_importances(study), out / f"{stem}-importances.png"))
            except (RuntimeError, ValueError, ZeroDivisionError):
                pass  # too few distinct values to measure importances yet
            figs.append(_save(ovm.plot_parallel_coordinate(study), out / f"{stem}-parallel.png"))
        figs.append(_save(ovm.plot_intermediate_values(study), out / f"{stem}-epochs.png"))
    return figs


def _record(run_dir):
    """The trial's run record (its model's size and cost), or None before the trial wrote one."""
    try:
        return read_record(run_dir) if run_dir else None
    except TinyVisionError:
        return None


def search_report(study_dir, out=None, storage: str | None = None) -> dict:
    study_dir = Path(study_dir)
    study = open_study(study_dir, storage)
    out = Path(out) if out else study_dir / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    figs = _plots(study, out.parent, out.stem)
    rows = []
    order = sorted(study.trials, key=lambda t: (t.value is None, -(t.value or 0.0), t.number))
    for t in order:
        secs = t.user_attrs.get("seconds")
        rec = _record(t.user_attrs.get("run_dir"))
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in (
            t.number, html.escape(t.state.name.lower()) + (f" ({html.escape(t.user_attrs['stopped'])})"
                                                            if "stopped" in t.user_attrs else ""),
            "–" if t.value is None else f"{t.value:.4f}",
            max(t.intermediate_values) if t.intermediate_values else "–",
            "–" if secs is None else f"{secs:.0f} s",
            "–" if rec is None else f"{html.escape(rec.model)} ({rec.params / 1e6:.2f} M, {rec.macs / 1e6:,.0f} M MACs)",
            html.escape(json.dumps(t.user_attrs.get("overrides", t.params))),
            html.escape(t.user_attrs.get("run_dir", "")))) + "</tr>")
    s = summary_of(study)
    imgs = "".join(f'<figure><img alt="{html.escape(p.stem)}" src="data:image/png;base64,'
                   f'{base64.b64encode(p.read_bytes()).decode()}"></figure>' for p in figs)
    best = s["best"]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tinyvision search: {html.escape(str(study_dir))}</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 2em; }} table {{ border-collapse: collapse; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; }} th {{ background: #f3f3f3; }}
.figs {{ display: flex; flex-wrap: wrap; gap: 1em; }} img {{ max-width: 100%; }}</style></head>
<body data-images="pending">
<h1>Search {html.escape(str(study_dir))}</h1>
<p>{s['trials']} trials ({html.escape(', '.join(f'{v} {k}' for k, v in s['states'].items()))}),
{s['elapsed_s'] / 60:.1f} minutes. Values: top-1 on the holdout split of train.
Best: {'none yet' if best is None else f"trial {best['number']}, {best['value']:.4f}"}.</p>
<table><thead><tr><th>trial</th><th>state</th><th>holdout top-1</th><th>epochs reported</th><th>time</th>
<th>model (parameters, MACs)</th><th>hyperparameters</th><th>run dir</th></tr></thead><tbody>{''.join(rows)}</tbody></table>
<div class="figs">{imgs}</div>
<script>
window.addEventListener("load", function () {{
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.every(function (i) {{ return i.complete && i.naturalWidth > 0; }});
  document.body.dataset.images = (ok ? "ok " : "broken ") + imgs.length;
}});
</script></body></html>
"""
    write_text(out, page)
    return {"html": str(out), "images": [str(p) for p in figs], **s}
