"""`tinyvision study SPEC.yaml --out DIR`: an experiment of the reports as a grid of ordinary runs,
and its results in the shape of the report's own table.

    name: seed003-mnist-resnet18                # what the table is
    report: "seed report 003, 4.2.1, ResNet on MNIST"
    base: seed003-mnist-resnet18-adam           # a config file or ready-made name every cell starts from
    set: {train.epochs: 10}                     # overrides for every cell
    assumptions: ["what the report left unsaid, and what we chose"]
    axes:                                       # the grid: every combination of the axes' values
      model: {ResNet18: {model.name: resnet18}, ResNet101: {model.name: resnet101}}
      optim.name: [sgd, adam]                   # shorthand: one key and its values
    cells:                                      # or, instead of axes, a list of variants
      - {label: "ResNet18 with SGD", set: {optim.name: sgd}, report: 0.984}
    table: {rows: model, cols: optim.name}      # axes shown as rows and columns (default: first two)

Each cell is an ordinary run dir under DIR/cells/, so eval and compare work on it. The grid is
an Optuna study with a GridSampler, on the same storage and trial loop as `search`: several
workers (`--workers N`, or other machines through one PostgreSQL URL) share it, and a killed
study run again continues: finished cells are kept, the interrupted one resumes exactly.
"""
from __future__ import annotations

import csv
import itertools
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from tinyvision.atomic import write_text
from tinyvision.engine.config import Config, load_config
from tinyvision.errors import TinyVisionError
from tinyvision.runs import read_metrics, read_summary
from tinyvision.search.budget import Budget, parse_budget
from tinyvision.search.space import _check_key, read_spec, to_config
from tinyvision.search.study import Search, _settings_guard, open_study

BUILTIN_STUDIES = Path(__file__).resolve().parent / "studies"


@dataclass
class Cell:
    label: str
    overrides: dict
    coords: dict = field(default_factory=dict)  # axis -> value name (grids), or row/col given in `cells`
    report: float | None = None  # the report's own number for this cell (fraction)

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", self.label).strip("-")


@dataclass
class StudySpec:
    name: str
    base: str
    fixed: dict
    cells: list[Cell]
    rows: str | None
    cols: str | None
    report: str = ""
    assumptions: list = field(default_factory=list)
    path: str = ""

    def base_config(self) -> Config:
        return load_config(self.base)


class GridSpace:
    """The study as a search space of one parameter, the cell index, which the GridSampler walks."""

    def __init__(self, spec: StudySpec):
        self.spec, self.name, self.fixed = spec, spec.name, dict(spec.fixed)

    def sample(self, trial) -> dict:
        return self.overrides_from_params({"cell": trial.suggest_categorical("cell", list(range(len(self.spec.cells))))})

    def overrides_from_params(self, stored: dict) -> dict:
        return {**self.fixed, **self.spec.cells[stored["cell"]].overrides}


class CellSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler, minus its call to study.stop() after the last cell: that works only
    inside study.optimize, and the trial loop here is the search's own (which stops by the budget)."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


class GridRun(Search):
    def trial_dir(self, trial, overrides: dict) -> Path:
        return self.out / "cells" / self._cell(trial).slug

    def _cell(self, trial) -> Cell:
        return self.space.spec.cells[trial.params["cell"]]


# ------------------------------------------------------------------ the spec
def _axis(name: str, values, where: str) -> dict[str, dict]:
    if isinstance(values, list):  # shorthand: `key: [v1, v2]`
        _check_key(name, where)
        return {str(v): {name: v} for v in values}
    if not isinstance(values, dict) or not values:
        raise TinyVisionError(f"{where}: axis {name!r} needs a list of values or a mapping of names to overrides")
    out = {}
    for label, over in values.items():
        if not isinstance(over, dict):
            raise TinyVisionError(f"{where}: axis {name!r}, value {label!r}: expected a mapping of config keys")
        for k in over:
            _check_key(k, where)
        out[str(label)] = dict(over)
    return out


def parse_study(tree: dict, where: str = "study") -> StudySpec:
    if not isinstance(tree, dict):
        raise TinyVisionError(f"{where}: a study spec is a mapping")
    unknown = set(tree) - {"name", "report", "base", "set", "assumptions", "axes", "cells", "table"}
    if unknown:
        raise TinyVisionError(f"{where}: unknown section(s) {', '.join(sorted(unknown))}")
    if "base" not in tree:
        raise TinyVisionError(f"{where}: a study needs `base`, the config every cell starts from")
    if ("axes" in tree) == ("cells" in tree):
        raise TinyVisionError(f"{where}: give either `axes` (a grid) or `cells` (a list of variants)")
    fixed = dict(tree.get("set") or {})
    for k in fixed:
        _check_key(k, where)
    table = tree.get("table") or {}
    cells: list[Cell] = []
    if "axes" in tree:
        axes = {name: _axis(name, values, where) for name, values in (tree["axes"] or {}).items()}
        if not axes:
            raise TinyVisionError(f"{where}: `axes` is empty")
        names = list(axes)
        for combo in itertools.product(*(axes[n].items() for n in names)):
            over = {}
            for _, o in combo:
                over.update(o)
            cells.append(Cell("/".join(label for label, _ in combo), over, dict(zip(names, (l for l, _ in combo)))))
        rows, cols = table.get("rows", names[0]), table.get("cols", names[1] if len(names) > 1 else None)
        for a in (rows, cols):
            if a is not None and a not in axes:
                raise TinyVisionError(f"{where}: table axis {a!r} is not one of the axes ({', '.join(names)})")
    else:
        for i, c in enumerate(tree["cells"] or []):
            if not isinstance(c, dict) or "label" not in c:
                raise TinyVisionError(f"{where}: cell {i + 1} needs a label")
            over = dict(c.get("set") or {})
            for k in over:
                _check_key(k, where)
            coords = {k: str(c[k]) for k in ("row", "col") if k in c}
            cells.append(Cell(str(c["label"]), over, coords, c.get("report")))
        if not cells:
            raise TinyVisionError(f"{where}: `cells` is empty")
        rows, cols = ("row" if any("row" in c.coords for c in cells) else None,
                      "col" if any("col" in c.coords for c in cells) else None)
    slugs = [c.slug for c in cells]
    if len(set(slugs)) != len(slugs):
        raise TinyVisionError(f"{where}: two cells have the same label")
    spec = StudySpec(str(tree.get("name") or Path(where).stem), str(tree["base"]), fixed, cells, rows, cols,
                     str(tree.get("report") or ""), list(tree.get("assumptions") or []), where)
    base = spec.base_config()
    for c in cells:  # every cell must be a valid config before anything runs
        try:
            to_config({**fixed, **c.overrides}, base)
        except TinyVisionError as e:
            raise TinyVisionError(f"{where}: cell {c.label!r}: {e}") from None
    return spec


def load_study(name: str) -> StudySpec:
    """A YAML file, or a built-in study (tinyvision/search/studies/<name>.yaml)."""
    tree, p = read_spec(name, BUILTIN_STUDIES, "study")
    return parse_study(tree, str(p))


# ------------------------------------------------------------------ running it
def run_study(spec_name: str, out, budget: str | None = None, storage: str | None = None, overrides=(),
              workers: int = 1, log=print) -> dict:
    """Run (or continue) every cell of the study; returns the results table (see `results`)."""
    spec = load_study(spec_name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    extra = dict(o.split("=", 1) for o in overrides)  # --set for every cell (say, fewer epochs)
    if workers > 1:
        return _run_workers(spec_name, out, budget, storage, overrides, workers, log)
    seconds, n_trials = parse_budget(budget) if budget else (None, None)
    sampler = CellSampler({"cell": list(range(len(spec.cells)))}, seed=0)
    study = open_study(out, storage, pruner="none", sampler=sampler)
    _settings_guard(study, {"space": spec.name, "cells": [c.label for c in spec.cells], "set": extra})
    spent = study.user_attrs.get("elapsed_s", 0.0) if seconds else 0.0
    n = len(spec.cells) if n_trials is None else min(n_trials, len(spec.cells))
    b = Budget(seconds, n, spent=spent)
    base = {**extra, "output.quiet": True, "output.tensorboard": False}
    GridRun(GridSpace(spec), b, out, study, base, log, spec.base_config()).run()
    res = results(spec, out)
    write_tables(spec, res, out)
    return res


def _run_workers(spec_name, out, budget, storage, overrides, workers, log) -> dict:
    """N processes on this machine, one study: each takes the next cell not yet taken."""
    cmd = [sys.executable, "-m", "tinyvision", "study", spec_name, "--out", str(out)]
    cmd += (["--budget", budget] if budget else []) + (["--storage", storage] if storage else [])
    for o in overrides:
        cmd += ["--set", o]
    threads = max(1, (os.cpu_count() or 1) // workers)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    procs = [subprocess.Popen(cmd + ["--set", f"train.threads={threads}"], env=env) for _ in range(workers)]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise TinyVisionError(f"study workers exited with {codes}")
    spec = load_study(spec_name)
    return results(spec, Path(out))


def results(spec: StudySpec, out: Path) -> dict:
    """Per cell: best and final val top-1, epochs, minutes, status; read from the cells' run dirs."""
    rows = []
    for c in spec.cells:
        d = out / "cells" / c.slug
        r = {"label": c.label, "coords": c.coords, "run_dir": str(d), "report": c.report, "status": "not started"}
        if d.exists() and (d / "config.yaml").exists():
            summary, metrics = read_summary(d), read_metrics(d)
            epochs = [m for m in metrics if m.get("type") == "epoch"]
            r["status"] = "finished" if summary else (f"running ({len(epochs)} epochs)" if epochs else "started")
            scored = [e["val_top1"] for e in epochs if "val_top1" in e]  # train.eval_every may skip some
            if scored:
                r.update(best=max(scored), final=scored[-1], epochs=len(epochs),
                         minutes=sum(e["seconds"] for e in epochs) / 60)
            if summary:
                r.update(minutes=summary["wall_time_s"] / 60, stopped=summary["stopped"])
        rows.append(r)
    return {"name": spec.name, "report": spec.report, "assumptions": spec.assumptions, "rows_axis": spec.rows,
            "cols_axis": spec.cols, "cells": rows}


def _fmt(r: dict) -> str:
    if "best" not in r:
        return r["status"]
    text = f"{100 * r['best']:.1f} / {100 * r['final']:.1f} ({r['epochs']} ep, {r['minutes']:.0f} min)"
    return text + (f" [report {100 * r['report']:.1f}]" if r.get("report") is not None else "")


def table_rows(res: dict) -> list[list[str]]:
    """The table as the report shows it: rows x cols when the study names them, else a list."""
    cells, ra, ca = res["cells"], res["rows_axis"], res["cols_axis"]
    if ra and ca:
        rows = list(dict.fromkeys(c["coords"].get(ra, "") for c in cells))
        cols = list(dict.fromkeys(c["coords"].get(ca, "") for c in cells))
        grid = {(c["coords"].get(ra, ""), c["coords"].get(ca, "")): _fmt(c) for c in cells}
        return [[""] + cols] + [[r] + [grid.get((r, k), "") for k in cols] for r in rows]
    return [["cell", "best / final top-1 % (epochs, minutes)"]] + [[c["label"], _fmt(c)] for c in cells]


def write_tables(spec: StudySpec, res: dict, out: Path) -> None:
    """DIR/results.csv (one line per cell), DIR/results.md (the report-shaped table), DIR/compare.html."""
    lines = [["cell", *(["row", "col"] if res["rows_axis"] else []), "status", "best_top1", "final_top1", "epochs",
              "minutes", "report_top1", "run_dir"]]
    for c in res["cells"]:
        coords = [c["coords"].get(res["rows_axis"], ""), c["coords"].get(res["cols_axis"], "")] if res["rows_axis"] else []
        lines.append([c["label"], *coords, c["status"], c.get("best", ""), c.get("final", ""), c.get("epochs", ""),
                      f"{c['minutes']:.2f}" if "minutes" in c else "", c.get("report") if c.get("report") is not None
                      else "", c["run_dir"]])
    import io

    buf = io.StringIO()
    csv.writer(buf).writerows(lines)
    write_text(out / "results.csv", buf.getvalue())
    t = table_rows(res)
    md = [f"# {spec.name}", "", spec.report, "", "| " + " | ".join(t[0]) + " |", "|" + " --- |" * len(t[0])]
    md += ["| " + " | ".join(r) + " |" for r in t[1:]]
    md += ["", "Cells: best / final val top-1 in %, epochs run, minutes."]
    if spec.assumptions:
        md += ["", "Assumptions (what the report left unsaid):", ""] + [f"- {a}" for a in spec.assumptions]
    write_text(out / "results.md", "\n".join(md) + "\n")
    started = [Path(c["run_dir"]) for c in res["cells"] if c["status"] != "not started"]
    if started:
        from tinyvision.report import compare_runs

        compare_runs(started, out / "compare.html")
