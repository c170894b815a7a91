"""`tinyvision search`: a budgeted Optuna study whose trials are ordinary run dirs.

TPE samples the space; the engine reports val (holdout) top-1 after every epoch and a median or
successive-halving pruner stops poor trials early. A trial runs under STUDY_DIR/trials/, so
`eval` and `compare` work on it, and it checkpoints like any run: a search killed at any moment
and started again with the same command continues the study, the interrupted trial from its last
checkpoint (Optuna itself cannot resume a trial; the engine's exact resume does it), no trial
repeated. Several processes, on one machine or many, share a study through one storage URL.
"""
from __future__ import annotations

import json
import os
import socket
import time
import warnings
from pathlib import Path

import optuna

from tinyvision.engine import Config, FitHooks, Interrupted, fit
from tinyvision.errors import TinyVisionError
from tinyvision.search.budget import Budget, parse_budget
from tinyvision.search.space import Space, load_space, to_config

STUDY_NAME = "tinyvision"
HEARTBEAT_S = 20.0  # how often a worker marks its running trial alive
STALE_S = 120.0  # a trial on another host is taken over after this long without a heartbeat


def storage_url(out: Path, storage: str | None) -> str:
    if storage and storage.startswith(("postgresql://", "postgres://")):
        # SQLAlchemy 2 reads a bare postgresql:// as psycopg 3; use psycopg2 (our `postgres` extra) if that is what is here
        import importlib.util

        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + storage.split("://", 1)[1]
    return storage or f"sqlite:///{(Path(out) / 'study.db').resolve()}"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(worker: str, heartbeat: float | None, now: float) -> bool:
    host, _, pid = worker.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return heartbeat is not None and now - heartbeat < STALE_S


def open_study(out: Path, storage: str | None = None, seed: int = 0, pruner: str = "median",
               sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruners = {"median": optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
               "halving": optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
               "none": optuna.pruners.NopPruner()}
    if pruner not in pruners:
        raise TinyVisionError(f"pruner {pruner!r}: choose median, halving or none")
    # workers sharing a study draw from different seeds, or they would propose the same first trials
    sampler = sampler or optuna.samplers.TPESampler(seed=seed + (os.getpid() if storage else 0), n_startup_trials=4)
    for attempt in range(3):
        try:
            return optuna.create_study(study_name=STUDY_NAME, storage=storage_url(out, storage), load_if_exists=True,
                                       direction="maximize", sampler=sampler, pruner=pruners[pruner])
        except Exception as e:  # a bad URL, a missing driver, a server that is down
            # workers starting together race to create the tables: the loser finds them on a retry
            if attempt == 2 or "already exists" not in str(e) and "duplicate key" not in str(e):
                raise TinyVisionError(f"cannot open the study at {storage_url(out, storage)}: "
                                      f"{type(e).__name__}: {e}") from None
            time.sleep(0.5 * (attempt + 1))


def _settings_guard(study: optuna.Study, settings: dict) -> None:
    """A study dir belongs to one search: rerunning with another space or dataset is refused."""
    saved = study.user_attrs.get("settings")
    if saved is None:
        study.set_user_attr("settings", settings)
    elif saved != settings:
        diff = [k for k in settings if saved.get(k) != settings[k]]
        raise TinyVisionError(f"this study was started with other settings ({', '.join(diff)}: "
                              f"{[saved.get(k) for k in diff]} then, {[settings[k] for k in diff]} now); "
                              "use another --out, or the same settings to continue it")


class Search:
    """The trial loop shared by `search` (TPE over a space) and `study` (a grid of report cells):
    continue interrupted trials, start new ones while the budget allows, each trial one run dir."""

    def __init__(self, space: Space, budget: Budget, out: Path, study: optuna.Study, base: dict, log=print,
                 base_config: Config | None = None):
        self.space, self.budget, self.out, self.study, self.base, self.log = space, budget, Path(out), study, base, log
        self.base_config = base_config  # the config the overrides apply to (default: the engine's defaults)
        self.me = worker_id()
        self._beat = float("-inf")

    # ---------------------------------------------------------------- bookkeeping
    def durations(self) -> list[float]:
        return [t.user_attrs["seconds"] for t in self.study.get_trials(deepcopy=False)
                if t.state == optuna.trial.TrialState.COMPLETE and "seconds" in t.user_attrs]

    def _spent(self) -> None:
        prev = self.study.user_attrs.get("elapsed_s", 0.0)
        self.study.set_user_attr("elapsed_s", max(prev, self.budget.elapsed()))

    def _heartbeat(self, trial, force=False) -> None:
        # When to beat is decided on the budget's clock, the one clock that steers the search (so an
        # injected clock alone decides what happens); the stamp written is wall time, which other
        # hosts compare with theirs to tell a live worker from a dead one.
        now = self.budget.clock()
        if force or now - self._beat > HEARTBEAT_S:
            trial.set_user_attr("heartbeat", time.time())
            self._spent()
            self._beat = now

    def interrupted_trial(self):
        """A RUNNING trial whose worker is gone (killed, reset): claim it to continue it."""
        now = time.time()
        for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            worker = t.user_attrs.get("worker", "")
            if not worker:  # just asked for by a worker that has not written its name yet
                started = t.datetime_start.timestamp() if t.datetime_start else now
                if now - started < STALE_S:
                    continue
            if worker != self.me and not _alive(worker, t.user_attrs.get("heartbeat"), now):
                trial = optuna.trial.Trial(self.study, t._trial_id)
                trial.set_user_attr("worker", self.me)
                trial.set_user_attr("heartbeat", now)
                return trial, t
        return None, None

    # ---------------------------------------------------------------- one trial
    def trial_dir(self, trial, overrides: dict) -> Path:
        return self.out / "trials" / f"trial-{trial.number:04d}"

    def run_trial(self, trial, overrides: dict, resumed: bool = False) -> None:
        run_dir = self.trial_dir(trial, overrides)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("worker", self.me)
        self._heartbeat(trial, force=True)
        cfg = to_config({**self.base, **overrides, "output.dir": str(run_dir), "output.if_exists": "resume"},
                        self.base_config)
        shown = {k: v for k, v in overrides.items() if k not in self.space.fixed}
        trial.set_user_attr("overrides", shown)  # readable values (Optuna stores list choices as indices)
        self.log(f"trial {trial.number}{' (continued)' if resumed else ''}: {json.dumps(shown)}")

        def epoch_end(epoch: int, val: dict) -> bool:
            with warnings.catch_warnings():  # a continued trial reports its earlier epochs again
                warnings.simplefilter("ignore")
                trial.report(val["top1"], epoch)
            self._heartbeat(trial, force=True)
            return not trial.should_prune()

        def should_stop() -> bool:
            self._heartbeat(trial)
            return self.budget.expired()

        t0 = self.budget.clock()
        try:
            summary = fit(cfg, resume=(run_dir / "config.yaml").exists(), hooks=FitHooks(epoch_end, should_stop))
        except Interrupted:  # the deadline: stopped mid-epoch, recorded as pruned
            trial.set_user_attr("stopped", "deadline")
            trial.set_user_attr("seconds", self.budget.clock() - t0)
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            self.log(f"trial {trial.number}: stopped at the deadline (pruned)")
            return
        except TinyVisionError as e:  # a combination that cannot run (say, a model too big for the input)
            trial.set_user_attr("error", str(e))
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.log(f"trial {trial.number}: failed: {e}")
            return
        trial.set_user_attr("seconds", self.budget.clock() - t0)  # this worker's part, on the budget's clock
        trial.set_user_attr("epochs", summary["epochs"])
        trial.set_user_attr("final_top1", summary["final"]["top1"])
        if summary["stopped"] == "pruned":
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            self.log(f"trial {trial.number}: pruned after epoch {summary['epochs']} "
                     f"(top-1 {summary['final']['top1']:.4f})")
        else:
            self.study.tell(trial, summary["best"]["top1"])
            self.log(f"trial {trial.number}: top-1 {summary['best']['top1']:.4f} in {summary['wall_time_s']:.0f} s")
        self._spent()

    # ---------------------------------------------------------------- the loop
    def run(self) -> dict:
        while True:
            trial, frozen = self.interrupted_trial()
            if trial is not None:
                self.run_trial(trial, self.space.overrides_from_params(frozen.params), resumed=True)
                continue
            ok, why = self.budget.can_start(len(self.study.get_trials(deepcopy=False)), self.durations())
            if not ok:
                self.log(f"search stops: {why}")
                break
            trial = self.study.ask()
            if self.budget.trials is not None and trial.number >= self.budget.trials:
                # another worker took the last trial between our count and our ask
                trial.set_user_attr("stopped", "over budget")
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                self.log(f"search stops: {self.budget.trials} trials started")
                break
            self.run_trial(trial, self.space.sample(trial))
        return summary_of(self.study)


def summary_of(study: optuna.Study) -> dict:
    trials = study.get_trials(deepcopy=False)
    states = {}
    for t in trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    return {"trials": len(trials), "states": states, "elapsed_s": study.user_attrs.get("elapsed_s", 0.0),
            "best": None if best is None else {"number": best.number, "value": best.value, "params": best.params,
                                               "run_dir": best.user_attrs.get("run_dir")}}


def run_search(space: str, budget: str, data: str, source: str | None, out, storage: str | None = None,
               seed: int = 0, holdout: float = 0.1, cache_dir: str | None = None, pruner: str = "median",
               clock=time.monotonic, log=print) -> dict:
    """Run (or continue) a search. Trials are scored on a stratified holdout of train."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sp = load_space(space)
    seconds, n_trials = parse_budget(budget)
    study = open_study(out, storage, seed, pruner)
    _settings_guard(study, {"space": sp.name, "data": data, "source": source, "holdout": holdout, "seed": seed})
    spent = study.user_attrs.get("elapsed_s", 0.0) if seconds else 0.0
    b = Budget(seconds, n_trials, spent=spent, clock=clock)
    base = {"data.name": data, "data.source": source, "data.cache_dir": cache_dir, "data.holdout": holdout,
            "train.seed": seed, "output.quiet": True, "output.tensorboard": False}
    if spent:
        log(f"continuing the study in {out}: {len(study.trials)} trials so far, {spent:.0f} s of the budget spent")
    return Search(sp, b, out, study, base, log).run()


def retrain(out, epochs: int, run_dir, storage: str | None = None) -> dict:
    """The best trial's configuration on the whole train split, evaluated on the dataset's val."""
    from tinyvision.engine.config import load_config

    study = open_study(Path(out), storage)
    best = summary_of(study)["best"]
    if best is None:
        raise TinyVisionError(f"{out}: no completed trial to retrain")
    cfg = load_config(str(Path(best["run_dir"]) / "config.yaml"))
    cfg.data.holdout = 0.0
    cfg.train.epochs = epochs
    cfg.output.dir = str(run_dir)
    cfg.output.if_exists = "refuse"
    cfg.output.quiet = False
    summary = fit(cfg)
    summary["trial"] = best["number"]
    return summary
