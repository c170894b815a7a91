"""train.time_budget: the planner's arithmetic on a fake clock, a real budgeted run that ends on
time, and exact resume of a budgeted run (the plan is kept)."""
import json
import time

import pytest
import torch

import fixtures
from fixtures import FakeClock
from tinyvision.engine import FitHooks, Interrupted, fit, load_config
from tinyvision.engine.plan import Plan, Planner, plan_steps, revise, val_passes
from tinyvision.evaluate import evaluate_run
from tinyvision.tta import passes as tta_passes


def test_plan_fills_the_budget_with_steps_and_val_passes():
    # 100 s budget, 10 s spent at step 20; 10 steps/s, a val pass of 5 s, 50 steps per epoch
    total, epochs = plan_steps(100, 10, 20, 0, 50, 10.0, 5.0, safety=0.0)
    cost = lambda n: (n - 20) / 10.0 + (-(-n // 50)) * 5.0  # noqa: E731
    assert cost(total) <= 90 < cost(total + 1) and epochs == -(-total // 50)
    assert (total, epochs) == (450, 9)  # 43 s of steps + 9 val passes of 5 s = 88 s; one more epoch would not fit
    assert plan_steps(100, 99, 20, 0, 50, 10.0, 5.0) == (20, 1)  # nothing left: stop where it is
    # one long epoch: (90 - 5) s of steps at 10/s; 2.5% of the budget held back costs 25 of them
    assert plan_steps(100, 10, 20, 0, 1000, 10.0, 5.0, safety=0.0) == (870, 1)
    assert plan_steps(100, 10, 20, 0, 1000, 10.0, 5.0) == (845, 1)


def test_plan_counts_only_the_val_passes_that_eval_every_keeps():
    # epochs 1..9 with eval_every 3: passes after 3, 6, 9; with 0: the final one only
    assert [val_passes(0, e, 3) for e in (1, 2, 3, 4, 9)] == [1, 1, 1, 2, 3]
    assert val_passes(4, 8, 3) == 2 and val_passes(0, 9, 0) == 1 and val_passes(0, 9, 1) == 9
    # the budget above (100 s, 10 steps/s, 5 s a pass, 50 steps an epoch) with one pass at the end:
    # (90 - 5) s of steps after step 20, no longer capped by eight dropped passes
    total, epochs = plan_steps(100, 10, 20, 0, 50, 10.0, 5.0, safety=0.0, eval_every=0)
    assert (total, epochs) == (870, 18)
    total, epochs = plan_steps(100, 10, 20, 0, 50, 10.0, 5.0, safety=0.0, eval_every=4)
    cost = lambda n: (n - 20) / 10.0 + val_passes(0, -(-n // 50), 4) * 5.0  # noqa: E731
    assert cost(total) <= 90 < cost(total + 1) and 450 < total < 870


def test_planner_skips_warmup_then_measures_steady_steps():
    p = Planner(budget_s=1000, steps_per_epoch=100)  # a window of 40 s (4% of the budget)
    clock = 0.0
    for step in range(1, 6):  # slow first steps (compilation, warm-up): skipped
        clock += 5.0
        assert not p.observe(step, clock, clock)
    step = 5
    while not p.observe(step, clock, clock):
        step += 1
        clock += 0.5  # the steady state: 2 steps/s
    assert step - 5 >= 10 and clock - 25.0 >= 40.0
    plan = p.make(step, clock, 0, eval_s=3.0, train_s=clock)
    assert plan.steps_per_s == pytest.approx(2.0)
    left = 1000 * (1 - 0.025) - clock
    assert (plan.total_steps - step) / 2.0 + (plan.epochs * 3.0) <= left
    assert plan.epochs == -(-plan.total_steps // 100)


def test_a_plan_revised_down_is_looked_at_again_and_revised_back_up():
    # 1000 s budget, planned at step 100 (100 s spent) at 10 steps/s, 1000 steps per epoch, no evals
    total, epochs = plan_steps(1000, 100, 100, 0, 1000, 10.0, 0.0)
    plan = Plan(1000, total, epochs, 10.0, 0.0, 100, 100.0, train_s=100.0)
    (s1,) = plan.checks()  # the first look, at a quarter of the planned steps
    assert s1 == 100 + int(0.25 * (total - 100))
    # another job cuts the speed to 40% up to it: the last step moves down, before the old second look
    t1 = 100.0 + (s1 - 100) / 4.0
    assert revise(plan, s1, t1, t1, 0, 1000, 0.0, 0.0) == plan.total_steps < 100 + int(0.5 * (total - 100))
    s2 = plan.checks()[-1]
    assert s1 < s2 < plan.total_steps  # the next look falls inside the new plan
    assert s2 == s1 + int(0.25 / 0.75 * (plan.total_steps - s1))  # where the rest of the looks are spread
    # full speed again by then: revised back up, towards the budget
    t2 = t1 + (s2 - s1) / 10.0
    down = plan.total_steps
    assert revise(plan, s2, t2, t2, 0, 1000, 0.0, 0.0) > down
    looks = plan.checks()
    assert looks[:2] == [s1, s2] and len(looks) == 3 and s2 < looks[2] < plan.total_steps
    assert looks == Plan.from_dict(plan.to_dict()).checks()  # a resumed run looks at the same steps
    # without revisions moving anything the looks are the shares of the plan as made
    still = Plan(1000, 1100, 2, 10.0, 0.0, 100, 100.0)
    for _ in range(4):
        still.revisions.append({"at_step": still.checks()[-1], "train_s": 0.0, "steps_per_s": 10.0,
                                "from_total": 1100, "total_steps": 1100, "epochs": 2})
    assert still.checks() == [350, 600, 850, 1000]


def _cfg(src, out, **over):
    return load_config(None, {
        "data.name": "fashion-mnist", "data.source": str(src), "model.name": "quicknet",
        "model.kwargs": {"widths": [16, 32], "stem": 16}, "train.batch_size": 32, "train.eval_batch_size": 100,
        "output.dir": str(out), "output.quiet": True, "output.tensorboard": False, "augment.policy": "flip",
        "optim.ema": 0.9, **over})


@pytest.fixture
def src(tmp_path):
    return fixtures.idx_dataset(tmp_path / "fm", n_train=640, n_test=200)


@pytest.mark.slow
@pytest.mark.parametrize("resizing", [{}, {"augment.progressive_from": 20}], ids=["plain", "progressive"])
def test_budgeted_run_ends_within_5_percent_of_its_budget(tmp_path, src, resizing):
    budget = 25.0
    fit(_cfg(src, tmp_path / "warm", **{"train.epochs": 1}))  # the cache is built outside the timed run
    t0 = time.perf_counter()
    s = fit(_cfg(src, tmp_path / "run", **{"train.time_budget": budget, "train.tta": True, **resizing}))
    wall = time.perf_counter() - t0
    tb = s["time_budget"]
    assert abs(tb["spent_s"] - budget) <= 0.05 * budget, tb
    assert abs(wall - tb["data_s"] - budget) <= 0.05 * budget + 1.0, (wall, tb)  # + process set-up outside the budget
    plan = tb["plan"]
    assert plan is not None and s["steps"] <= plan["total_steps"] and s["epochs"] <= plan["epochs"]
    assert s["steps"] == plan["total_steps"] or tb["cut"]
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    totals = [l["total_steps"] for l in lines if l["type"] == "plan"]  # the plan, then each revision that moved it
    assert totals[-1] == plan["total_steps"] and len(totals) == 1 + sum(r["total_steps"] != r["from_total"]
                                                                       for r in plan["revisions"])
    # eval re-scores the final evaluation: the last weights, with the run's flip TTA by default
    again = evaluate_run(tmp_path / "run", "val", checkpoint="last", out_dir=tmp_path / "eval")
    assert again["tta"] == "flip" and again["top1"] == s["final"]["top1"]
    # a late run's last look may end it where it stands (total = the step it looked at), never before
    assert len(plan["revisions"]) <= 4 and all(r["at_step"] <= r["total_steps"] for r in plan["revisions"])


@pytest.mark.parametrize("averaging", [{"optim.ema": 0.9}, {"optim.ema": 0.0, "optim.lookahead": 3},
                                       {"optim.ema": 0.9, "augment.progressive_from": 20}],
                         ids=["ema", "lookahead", "progressive"])
def test_budgeted_run_resumes_exactly_with_its_plan(tmp_path, src, averaging):
    over = {"train.time_budget": 3.0, "train.log_every": 1, "optim.label_smoothing": 0.1, **averaging}
    ref = fit(_cfg(src, tmp_path / "ref", **over), hooks=FitHooks(clock=FakeClock()))
    plan = ref["time_budget"]["plan"]
    assert plan is not None and plan["total_steps"] > plan["made_at_step"] + 5 and not ref["time_budget"]["cut"]
    # stopped after the plan's last look at itself (its revisions depend on the clock from then on)
    stop_at = max([plan["made_at_step"]] + [r["at_step"] for r in plan["revisions"]]) + 3
    assert stop_at < plan["total_steps"]
    state = {"step": 0}

    def should_stop():
        state["step"] += 1
        return state["step"] == stop_at

    with pytest.raises(Interrupted):
        fit(_cfg(src, tmp_path / "run", **over), hooks=FitHooks(should_stop=should_stop, clock=FakeClock()))
    ck = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert ck["step"] == stop_at and ck["plan"] == plan  # the plan was made (and revised), and saved, before the stop
    # resumed on a clock that runs 5x faster: the kept plan, not a new one, decides the steps
    res = fit(_cfg(src, tmp_path / "run", **over), resume=True, hooks=FitHooks(clock=FakeClock(0.002)))
    assert res["time_budget"]["plan"] == plan and res["steps"] == ref["steps"] == plan["total_steps"]
    a = torch.load(tmp_path / "ref" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    parts = [("model",), ("ema",) if "ema" in a else ("lookahead", "slow")]
    assert ("ema" in a) == (averaging["optim.ema"] > 0) and ("lookahead" in a) == ("optim.lookahead" in averaging)
    for path in parts:
        ta, tb = a, b
        for key in path:
            ta, tb = ta[key], tb[key]
        for k in ta:
            assert torch.equal(ta[k], tb[k]), f"{'.'.join(path)}.{k} differs"
    assert a["scheduler"] == b["scheduler"] and res["final"] == ref["final"]
    assert _sides(tmp_path / "run") == _sides(tmp_path / "ref")  # progressive resizing: the same side at every step


def _sides(run_dir):
    """The logged side of every step's batch (None without progressive resizing)."""
    return [l.get("side") for l in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if l["type"] == "step"]


def test_the_plans_val_timing_is_not_counted_as_training(tmp_path, src, monkeypatch):
    """make_plan times a few val batches in the middle of an epoch. That is budget time but not
    training, so the plan's first revision measures the steps' own speed, however long the val
    timing took: a slow one used to read as a slowdown and cut the plan."""
    from tinyvision.engine import train as train_module

    make, first = train_module.Run.make_plan, {}
    for extra in (0.0, 1.0):  # the val timing as is, then 1 s longer: some 90 steps on this clock
        clock = FakeClock()

        def make_plan(run, train_seconds):
            clock.t += extra
            make(run, train_seconds)

        monkeypatch.setattr(train_module.Run, "make_plan", make_plan)
        s = fit(_cfg(src, tmp_path / f"run{extra}", **{"train.time_budget": 6.0}), hooks=FitHooks(clock=clock))
        plan = s["time_budget"]["plan"]
        first[extra] = plan["revisions"][0]
        assert first[extra]["at_step"] > plan["made_at_step"] + 10
    assert first[1.0]["steps_per_s"] == pytest.approx(first[0.0]["steps_per_s"], rel=0.02), first


def test_eval_every_skips_val_passes_but_never_the_final_one(tmp_path, src):
    from tinyvision.report.compare import run_row
    from tinyvision.errors import TinyVisionError

    s = fit(_cfg(src, tmp_path / "run", **{"train.epochs": 3, "train.eval_every": 2}))
    epochs = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
              if json.loads(l)["type"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert ["val_top1" in e for e in epochs] == [False, True, True]  # after epoch 2, and the final one
    assert s["final"]["top1"] == epochs[-1]["val_top1"] and s["best"]["epoch"] in (2, 3)
    row = run_row(tmp_path / "run")  # the compare page reads the scored epochs only
    assert row["final_top1"] == epochs[-1]["val_top1"] and row["best_epoch"] in (2, 3)
    with pytest.raises(TinyVisionError, match="train.eval_every -1"):
        fit(_cfg(src, tmp_path / "bad", **{"train.epochs": 1, "train.eval_every": -1}))


def test_a_budget_too_short_for_the_machine_stops_at_once_and_says_so(tmp_path, src, capsys):
    # a clock 100x slower than the fixture's steps: timing the steady state uses the whole budget
    s = fit(_cfg(src, tmp_path / "run", **{"train.time_budget": 20.0, "output.quiet": False}),
            hooks=FitHooks(clock=FakeClock(1.0)))
    plans = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if json.loads(l)["type"] == "plan"]
    assert plans[0]["room"] is False and plans[0]["total_steps"] == plans[0]["made_at_step"] == s["steps"]
    out = capsys.readouterr().out
    assert "too short on this machine" in out
    # it says it will overrun exactly when what is spent plus the final evaluation passes the budget
    over = plans[0]["made_at_s"] + plans[0]["eval_s"] * tta_passes(False) > 20.0  # _cfg: no TTA
    assert ("will overrun its budget" in out) == over
    assert s["final"]["top1"] is not None  # the final evaluation still ran
