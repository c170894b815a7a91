"""Progressive resizing: the sides' schedule, its cost model in the time-budget planner, and runs
that train small batches first, evaluate at the full size and resume exactly."""
import json

import numpy as np
import pytest
import torch

import fixtures
from fixtures import FakeClock
from tinyvision.data.augment import build_augment
from tinyvision.engine import FitHooks, fit, load_config
from tinyvision.engine.plan import SAFETY, Plan, Planner, plan_steps, revise
from tinyvision.engine.progressive import Progressive
from tinyvision.errors import TinyVisionError
from tinyvision.evaluate import evaluate_run


def test_sides_grow_linearly_on_the_ladder_then_stay_full():
    p = Progressive(40, 64, 0.75)
    assert list(p.ladder) == [40, 48, 56, 64]
    sides = p.sides(0, 1000, 1000)
    assert sides[0] == 40 and np.all(np.diff(sides) >= 0) and set(sides) == {40, 48, 56, 64}
    # the linear target 40 + 24 * step / 750 passes each rung at an equal share of the ramp
    assert [int(np.argmax(sides >= s)) for s in (48, 56, 64)] == [250, 500, 750]
    assert p.side(999, 1000) == 64 and p.side(0, 1000) == 40
    assert list(Progressive(20, 28, 0.5).sides(0, 10, 10)) == [20, 20, 20, 24, 24, 28, 28, 28, 28, 28]
    for bad in ({"start": 64}, {"start": 0}, {"until": 0.0}, {"until": 1.5}):
        with pytest.raises(TinyVisionError, match="progressive"):
            Progressive(**{"start": 40, "full": 64, "until": 0.75, **bad})


def test_cost_model_is_recovered_from_the_two_ends():
    p = Progressive(32, 64, 0.6)

    def seconds(side):  # a step: 0.05 s that do not shrink, 0.2 s that scale with the pixels
        return 0.05 + 0.2 * (side / 64) ** 2

    fixed = p.fixed_share(1 / seconds(32), 1 / seconds(64))
    assert fixed == pytest.approx(0.05 / 0.25)
    true_s = sum(seconds(s) for s in p.sides(100, 900, 1000))
    assert p.work(100, 900, 1000, fixed) * seconds(64) == pytest.approx(true_s)
    # noise is clipped: a start step timed slower than a full one, or cheaper than its pixels
    assert p.fixed_share(1.0, 2.0) == 1.0 and p.fixed_share(10.0, 1.0) == 0.0


def test_planner_times_both_ends_and_fills_the_budget_with_cheaper_steps():
    p = Progressive(32, 64, 0.75)

    def seconds(side):
        return 0.05 + 0.2 * (side / 64) ** 2

    budget, per_epoch = 600.0, 500
    planner = Planner(budget, per_epoch, progressive=p)
    step, clock, sides = 0, 0.0, []
    while True:
        side = planner.side()
        sides.append(side)
        clock += seconds(side) * (3 if step < 5 else 1)  # slow first steps: skipped
        step += 1
        if planner.observe(step, clock, clock) and not planner.next_phase(step, clock):
            break
    assert sides[0] == 32 and sides[-1] == 64 and sides == sorted(sides)  # the start side, then the full one
    plan = planner.make(step, clock, 0, eval_s=2.0, train_s=clock)
    assert plan.fixed_share == pytest.approx(0.2) and plan.steps_per_s == pytest.approx(1 / seconds(64))
    left = budget * (1 - SAFETY) - clock

    def cost(total):  # the true seconds from here: the steps at their sides, and a val pass per epoch
        return sum(seconds(s) for s in p.sides(step, total, total)) + -(-total // per_epoch) * 2.0

    assert cost(plan.total_steps) <= left < cost(plan.total_steps + 10)
    plain, _ = plan_steps(budget, clock, step, 0, per_epoch, plan.steps_per_s, 2.0)
    assert plan.total_steps > 1.25 * plain  # what the small steps buy
    # steps at the speed the model expects leave the plan where it is, in full-size units
    s1 = plan.checks()[0]
    t1 = clock + sum(seconds(s) for s in p.sides(step, s1, plan.total_steps))
    assert revise(plan, s1, t1, t1, 0, per_epoch, 2.0, 0.0, progressive=p) is None
    assert Plan.from_dict(plan.to_dict()).fixed_share == plan.fixed_share  # kept in checkpoints


def test_augment_resizes_its_batches_on_request():
    aug = build_augment("flip", (0.5,), (0.25,), image_size=28)
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    assert aug(x, g).shape == (4, 1, 28, 28)
    aug.resize_to(20)
    assert aug(x, g).shape == (4, 1, 20, 20)
    aug.resize_to(None)
    assert aug(x, g).shape == (4, 1, 28, 28)
    sized = build_augment("flip", (0.5,), (0.25,), image_size=28, size=32)
    sized.resize_to(24)
    assert sized(x, g).shape == (4, 1, 24, 24) and len(sized.stages) == len(aug.stages) + 1


def _cfg(src, out, **over):
    return load_config(None, {
        "data.name": "fashion-mnist", "data.source": str(src), "model.name": "quicknet",
        "model.kwargs": {"widths": [16, 32], "stem": 16}, "train.batch_size": 32, "train.eval_batch_size": 100,
        "output.dir": str(out), "output.quiet": True, "output.tensorboard": False, "augment.policy": "flip",
        "train.log_every": 1, "augment.progressive_from": 20, "augment.progressive_until": 0.5, **over})


@pytest.fixture
def src(tmp_path):
    return fixtures.idx_dataset(tmp_path / "fm", n_train=320, n_test=100)


def _steps(run_dir):
    lines = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [l for l in lines if l["type"] == "step"]


def test_run_trains_small_batches_first_and_evaluates_at_full_size(tmp_path, src):
    s = fit(_cfg(src, tmp_path / "run", **{"train.epochs": 2}))
    steps = _steps(tmp_path / "run")
    total = s["steps"]
    assert [l["side"] for l in steps] == list(Progressive(20, 28, 0.5).sides(0, total, total))
    assert steps[0]["side"] == 20 and steps[-1]["side"] == 28
    again = evaluate_run(tmp_path / "run", "val", checkpoint="last", out_dir=tmp_path / "eval")
    assert again["top1"] == s["final"]["top1"]  # val and eval: the full 28 px, the run's input size
    assert json.loads((tmp_path / "run" / "run.json").read_text())["image_size"] == 28


def test_budgeted_run_times_both_ends_then_follows_the_plan(tmp_path, src):
    s = fit(_cfg(src, tmp_path / "run", **{"train.time_budget": 3.0}), hooks=FitHooks(clock=FakeClock()))
    plan = s["time_budget"]["plan"]
    assert plan is not None and plan["total_steps"] > plan["made_at_step"] + 5
    sides = [l["side"] for l in _steps(tmp_path / "run")]
    measured, planned = sides[: plan["made_at_step"]], sides[plan["made_at_step"]:]
    assert measured[0] == 20 and measured[-1] == 28 and measured == sorted(measured)
    assert 0.0 <= plan["fixed_share"] <= 1.0
    assert planned[0] == 20 and planned[-1] == 28 and len(sides) == s["steps"]
    # (exact resume of such a run: tests/test_budget.py, the "progressive" case)


@pytest.mark.parametrize("over, match", [
    ({"augment.progressive_from": 28}, "between 1 and the full input size, 28 px"),
    ({"augment.progressive_from": 12}, "at least 16 px"),
    ({"augment.size": 32, "model.name": "seed004-net", "model.kwargs": {}}, "takes a fixed input size"),
    ({"transfer.mode": "features"}, "cached features"),
])
def test_what_progressive_resizing_cannot_do_is_an_error(tmp_path, src, over, match):
    with pytest.raises(TinyVisionError, match=match):
        fit(_cfg(src, tmp_path / "run", **{"train.epochs": 1, **over}))
