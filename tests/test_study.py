"""`tinyvision study`: a 2x2 grid on fixtures runs, is killed mid-cell and resumed, and its table
has the report's shape and the cells' own numbers."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

import fixtures
from tinyvision.errors import TinyVisionError
from tinyvision.search.grid import load_study, parse_study, results, table_rows


@pytest.fixture
def grid(tmp_path):
    src = fixtures.idx_dataset(tmp_path / "fm", n_train=160, n_test=40)
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({
        "data": {"name": "fashion-mnist", "source": str(src)}, "model": {"name": "quicknet", "kwargs": {"stem": 8}},
        "optim": {"lr": 0.05}, "train": {"epochs": 2, "batch_size": 16, "eval_batch_size": 40,
                                         "checkpoint_every": 1, "log_every": 1}, "augment": {"policy": "flip"}}))
    spec = tmp_path / "grid.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "fixture-grid", "report": "a 2x2 test grid", "base": str(base),
        "assumptions": ["widths stand in for depths"],
        "axes": {"width": {"narrow": {"model.kwargs": {"widths": [8], "stem": 8}},
                           "wide": {"model.kwargs": {"widths": [16], "stem": 8}}},
                 "optim.name": ["sgd", "adam"]},
        "table": {"rows": "width", "cols": "optim.name"}}, sort_keys=False))
    return spec


def test_spec_errors_name_the_problem(tmp_path, grid):
    tree = yaml.safe_load(grid.read_text())
    with pytest.raises(TinyVisionError, match="either `axes`.*or `cells`"):
        parse_study({k: v for k, v in tree.items() if k != "axes"}, "x.yaml")
    with pytest.raises(TinyVisionError, match="x.yaml: unknown key 'optim.nam'"):
        parse_study({**tree, "axes": {"optim.nam": ["sgd"]}}, "x.yaml")
    with pytest.raises(TinyVisionError, match="cell 'narrow/rmsprop2'.*optim.name 'rmsprop2'"):
        parse_study({**tree, "axes": {**tree["axes"], "optim.name": ["rmsprop2"]}}, "x.yaml")
    with pytest.raises(TinyVisionError, match="table axis 'depth'"):
        parse_study({**tree, "table": {"rows": "depth"}}, "x.yaml")
    spec = parse_study(tree, "x.yaml")
    assert [c.label for c in spec.cells] == ["narrow/sgd", "narrow/adam", "wide/sgd", "wide/adam"]


def _cmd(spec, out):
    return [sys.executable, "-m", "tinyvision", "study", str(spec), "--out", str(out)]


def test_grid_killed_and_resumed_gives_the_table(tmp_path, grid):
    out = tmp_path / "study"
    env = dict(os.environ, TINYVISION_CACHE_DIR=str(tmp_path / "cache"))
    p = subprocess.Popen(_cmd(grid, out), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    cells = out / "cells"

    def in_second_cell():  # the grid's order is the sampler's: one cell done, another one started
        done = list(cells.glob("*/summary.json"))
        started = [c for c in cells.glob("*/checkpoints/last.pt") if not (c.parent.parent / "summary.json").exists()]
        return len(done) == 1 and len(started) == 1

    deadline = time.time() + 240
    while not in_second_cell() and p.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert p.poll() is None, p.stdout.read().decode()
    os.killpg(p.pid, signal.SIGKILL)  # in the second cell, after its first step
    p.wait()
    first = next(cells.glob("*/summary.json")).parent
    second = next(c.parent.parent for c in cells.glob("*/checkpoints/last.pt") if c.parent.parent != first)
    assert not (second / "summary.json").exists()
    first_log = (first / "metrics.jsonl").read_text()
    r = subprocess.run(_cmd(grid, out), env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (first / "metrics.jsonl").read_text() == first_log  # a finished cell is kept, not rerun
    resumed = [json.loads(l) for l in (second / "metrics.jsonl").read_text().splitlines()]
    steps = [l["step"] for l in resumed if l["type"] == "step"]
    assert steps == list(range(1, 21))  # each step once: the interrupted cell continued from its checkpoint
    spec = load_study(str(grid))
    res = results(spec, out)
    assert [c["status"] for c in res["cells"]] == ["finished"] * 4
    for c in res["cells"]:
        summary = json.loads((out / "cells" / c["label"].replace("/", "-") / "summary.json").read_text())
        assert c["best"] == summary["best"]["top1"] and c["final"] == summary["final"]["top1"] and c["epochs"] == 2
    t = table_rows(res)
    assert t[0] == ["", "sgd", "adam"] and [row[0] for row in t[1:]] == ["narrow", "wide"]
    assert t[2][2].startswith(f"{100 * res['cells'][3]['best']:.1f} / {100 * res['cells'][3]['final']:.1f} (2 ep")
    md = (out / "results.md").read_text()
    assert "|  | sgd | adam |" in md and "widths stand in for depths" in md
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [(x["row"], x["col"]) for x in rows] == [("narrow", "sgd"), ("narrow", "adam"), ("wide", "sgd"), ("wide", "adam")]
    assert (out / "compare.html").exists() and all(c["label"].replace("/", "-") in (out / "compare.html").read_text()
                                                   for c in res["cells"])
    assert "narrow" in r.stdout and "adam" in r.stdout  # the table is printed too


def test_every_builtin_study_parses_with_valid_cells_and_the_reports_numbers():
    from tinyvision.search.grid import BUILTIN_STUDIES
    names = sorted(p.stem for p in BUILTIN_STUDIES.glob("*.yaml"))
    assert len(names) >= 10
    for name in names:
        spec = load_study(name)  # parse_study checks every cell's config before anything runs
        assert spec.cells and spec.report and spec.assumptions, name
        assert len({c.slug for c in spec.cells}) == len(spec.cells), name
    # a report table's rows carry the report's own figure, so docs/reproductions.md sets ours beside it
    opt = load_study("seed003-cifar10-resnet18-optimizers")
    assert {c.label: c.report for c in opt.cells} == {"RMSprop": 0.789, "SGD": 0.646, "SGD and momentum": 0.784,
                                                      "Adam": 0.843}
