"""The search: budget logic (fake clock), spaces and their errors, trials as run dirs, kill and
continue, the deadline, and two workers sharing a study through a real PostgreSQL server."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

import fixtures
from browser import CHROMIUM, check_page
from tinyvision.errors import TinyVisionError
from tinyvision.search import Budget, load_space, parse_budget, parse_space, run_search
from tinyvision.search.study import open_study


# ------------------------------------------------------------------ budget
def test_parse_budget():
    assert parse_budget("15m") == (900, None)
    assert parse_budget("1h30m") == (5400, None)
    assert parse_budget("90s") == (90, None)
    assert parse_budget("20") == (None, 20)
    for bad in ("", "soon", "0", "15x", "-3"):
        with pytest.raises(TinyVisionError, match="budget"):
            parse_budget(bad)


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_budget_starts_only_trials_that_can_finish():
    clock = FakeClock()
    b = Budget(seconds=600, clock=clock)
    assert b.can_start(0, [])[0]  # nothing known yet: the first trial starts
    clock.t += 300
    assert b.can_start(2, [100, 100])[0]  # 300 s left, a trial takes ~100 s
    ok, why = b.can_start(2, [250, 350])  # mean 300 + stdev 71 > 300 left
    assert not ok and "expected to take 371 s" in why
    clock.t += 301
    assert b.expired() and not b.can_start(3, [10])[0]
    # spent time of an earlier run of the same search counts
    assert Budget(seconds=600, spent=550, clock=clock).time_left() == pytest.approx(50)
    n = Budget(trials=3, clock=clock)
    assert n.can_start(2, [])[0] and not n.can_start(3, [])[0] and not n.expired()


# ------------------------------------------------------------------ spaces
def test_builtin_spaces_parse_and_sample():
    for name in ("small-cnn", "resnet", "autokeras-like"):
        space = load_space(name)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
        for _ in range(5):
            trial = study.ask()
            values = space.sample(trial)
            from tinyvision.search.space import to_config

            cfg = to_config(values)
            assert cfg.train.epochs == 4
            if name == "autokeras-like" and cfg.model.name != "quicknet":
                assert "widths" not in cfg.model.kwargs  # conditional: only for the vanilla block
            study.tell(trial, 0.5)


@pytest.mark.parametrize("params, match", [
    ({"model.name": {"choices": ["quicknet", "resnet-9000"]}}, "model.name: unknown model 'resnet-9000'"),
    ({"optim.lr": {"choices": []}}, "optim.lr: choices must be a non-empty list"),
    ({"optim.lr": {"low": 0.1, "high": 0.01}}, r"optim.lr: inverted range \(low 0.1 >= high 0.01\)"),
    ({"optim.lr": {"low": 0.0, "high": 0.1, "log": True}}, "optim.lr: a log range needs low > 0"),
    ({"optim.lrate": {"low": 0.01, "high": 0.1}}, "unknown key 'optim.lrate'; did you mean optim.lr"),
    ({"optim.lr": {"low": 0.01}}, "optim.lr: a range needs both low and high"),
    ({"optim.nesterov": {"choices": [True], "when": {"optim.name": "sgd"}}}, "not an earlier parameter"),
])
def test_bad_spaces_name_the_key(params, match):
    with pytest.raises(TinyVisionError, match=match):
        parse_space({"params": params}, "my-space.yaml")


# ------------------------------------------------------------------ a real (tiny) search
SPACE = {"fixed": {"model.name": "quicknet", "train.epochs": 2, "train.batch_size": 16, "train.eval_batch_size": 32,
                   "augment.policy": "flip"},
         "params": {"model.kwargs.widths": {"choices": [[8], [8, 16]]},
                    "model.kwargs.stem": {"choices": [8]},
                    "optim.lr": {"low": 0.01, "high": 0.1, "log": True}}}


@pytest.fixture
def tiny_search(tmp_path):
    src = fixtures.idx_dataset(tmp_path / "fmnist", n_train=200, n_test=20)
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    return src, space


def test_search_trials_are_run_dirs_then_report_and_retrain(tmp_path, tiny_search, capsys):
    from tinyvision.cli import main

    src, space = tiny_search
    out = tmp_path / "study"
    res = run_search(str(space), "3", "fashion-mnist", str(src), out, log=lambda m: None)
    assert res["trials"] == 3 and res["best"] is not None
    runs = sorted((out / "trials").iterdir())
    assert [r.name for r in runs] == ["trial-0000", "trial-0001", "trial-0002"]
    for r in runs:
        summary = json.loads((r / "summary.json").read_text())
        assert summary["val_split"] == "holdout"  # trials never see the test split
    best_run = Path(res["best"]["run_dir"])
    assert json.loads((best_run / "summary.json").read_text())["best"]["top1"] == res["best"]["value"]
    assert main(["search", "report", str(out), "--out", str(tmp_path / "rep.html")]) == 0
    page = (tmp_path / "rep.html").read_text()
    n_images = page.count("data:image/png;base64,")
    assert "trial-0002" in page and n_images >= 3
    rec = json.loads((runs[0] / "run.json").read_text())  # the leaderboard shows each trial's model, from its record
    assert f"{rec['model']} ({rec['params'] / 1e6:.2f} M" in page
    if CHROMIUM:
        check_page(tmp_path / "rep.html", tmp_path, expect_images=n_images)
    assert main(["search", "retrain", str(out), "--epochs", "1", "--out", str(tmp_path / "final")]) == 0
    final = json.loads((tmp_path / "final" / "summary.json").read_text())
    assert final["val_split"] == "test" and final["epochs"] == 1
    # a second call with the budget used up does nothing more; another space is refused
    again = run_search(str(space), "3", "fashion-mnist", str(src), out, log=lambda m: None)
    assert again["trials"] == 3
    with pytest.raises(TinyVisionError, match="other settings"):
        run_search("small-cnn", "3", "fashion-mnist", str(src), out, log=lambda m: None)


def test_deadline_stops_the_running_trial(tmp_path, tiny_search):
    src, space = tiny_search
    calls = {"n": 0}

    def clock():  # every look at the clock costs a simulated second: the 30 s budget ends mid-trial
        calls["n"] += 1
        return float(calls["n"])

    res = run_search(str(space), "30s", "fashion-mnist", str(src), tmp_path / "study", clock=clock, log=lambda m: None)
    study = open_study(tmp_path / "study")
    last = study.trials[-1]
    assert last.state == optuna.trial.TrialState.PRUNED and last.user_attrs["stopped"] == "deadline"
    assert res["trials"] == len(study.trials)


def _search_cmd(space, src, out, budget, storage=None):
    cmd = [sys.executable, "-m", "tinyvision", "search", "--space", str(space), "--budget", budget,
           "--data", "fashion-mnist", "--source", str(src), "--out", str(out)]
    return cmd + (["--storage", storage] if storage else [])


def test_killed_search_continues_without_repeating(tmp_path, tiny_search):
    src, space = tiny_search
    out = tmp_path / "study"
    env = dict(os.environ, TINYVISION_CACHE_DIR=str(tmp_path / "cache"))
    cmd = _search_cmd(space, src, out, "3")
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    target = out / "trials" / "trial-0001" / "checkpoints" / "last.pt"
    deadline = time.time() + 240
    while not target.exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert p.poll() is None, p.stdout.read().decode()
    os.killpg(p.pid, signal.SIGKILL)  # mid-trial 1, after its first epoch checkpoint
    p.wait()
    before = open_study(out)
    done0 = before.trials[0].value
    assert before.trials[1].state == optuna.trial.TrialState.RUNNING
    epochs_before = [json.loads(l)["epoch"] for l in (out / "trials" / "trial-0001" / "metrics.jsonl").read_text().splitlines()
                     if '"type": "epoch"' in l]
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "trial 1 (continued)" in rerun.stdout
    after = open_study(out)
    assert [t.number for t in after.trials] == [0, 1, 2]  # no trial repeated, none lost
    assert after.trials[0].value == done0
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in after.trials)
    lines = [json.loads(l) for l in (out / "trials" / "trial-0001" / "metrics.jsonl").read_text().splitlines()]
    epochs = [l["epoch"] for l in lines if l["type"] == "epoch"]
    assert epochs[: len(epochs_before)] == epochs_before and epochs == sorted(set(epochs))  # continued, not redone


PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), default=Path("/nonexistent"), key=lambda p: p.parent.name)


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL server on loopback (Debian's postgresql package)."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip("needs Debian's postgresql (installed by .ci/run)")
    pytest.importorskip("psycopg2")
    import tempfile

    data = Path(tempfile.mkdtemp(prefix="tv-pg-"))  # outside pytest's root-only tmp dirs: postgres must reach it
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_pg:
        shutil.chown(data, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*as_pg, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "tv"], check=True,
                   capture_output=True)
    subprocess.run([*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "log"), "-o",
                    f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        subprocess.run([*as_pg, str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "tv", "study"],
                       check=True, capture_output=True)
        yield f"postgresql://tv@127.0.0.1:{port}/study"
    finally:
        subprocess.run([*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def test_two_workers_share_a_postgresql_study(tmp_path, tiny_search, postgres):
    src, space = tiny_search
    out = tmp_path / "study"
    env = dict(os.environ, TINYVISION_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    # prepare the cache once, so the two workers do not race to build it
    from tinyvision.data import prepare

    prepare("fashion-mnist", str(src), cache_dir=str(tmp_path / "cache"))
    open_study(out, postgres)  # tables created up front, so both workers start at once
    cmd = _search_cmd(space, src, out, "6", storage=postgres)
    workers = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(2)]
    outs = [w.communicate(timeout=300)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[-1500:] for o in outs]
    study = open_study(out, postgres)
    done = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert sorted(t.number for t in done) == [0, 1, 2, 3, 4, 5]  # a late ask past the budget is marked, not run
    assert all(t.user_attrs.get("stopped") == "over budget" for t in study.trials if t not in done)
    ran_by = {t.user_attrs["worker"] for t in done}
    assert len(ran_by) == 2, ran_by  # both workers took trials from the one study
