"""A run that ends on time: `train.time_budget` seconds for training and its evaluations.

The run first trains as configured while it measures its own speed: it skips the first steps
(compilation, allocator and kernel warm-up: they count against the budget, but do not say how
fast the steady state is), times the following ones, and times a few val batches. It then fixes
the number of steps, and with it the learning-rate schedule, so that the remaining steps plus
the val passes (one per epoch begun, or per `train.eval_every` epochs, the last being the final
evaluation) end within the budget.
The plan is saved in every checkpoint, so a resumed run keeps it: its steps and learning rates
are those the run would have had uninterrupted. The cache build is not part of the budget.

Speed on a shared machine varies, so a deadline guards the plan: when the budget is about to
run out before the planned steps are done, training stops early enough for the final evaluation.

With progressive resizing (tinyvision.engine.progressive) steps differ in cost: the planner times
the steady state at the start side, then at the full side, and counts the steps to come in
full-size steps (`Plan.steps_per_s` is then full-size steps per second, `Plan.fixed_share` the
share of a step's cost that does not shrink with its pixels).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

from tinyvision.engine.progressive import Progressive
from tinyvision.errors import TinyVisionError

SAFETY = 0.025  # share of the budget left unplanned: checkpoints, epoch changes, timing noise
REVISE_AT = (0.25, 0.5, 0.75, 0.9)  # shares of the planned steps (from the plan on) at which it is revised
REVISE_MIN = 0.01  # a revision changes the plan only when it moves the last step by more than this share


@dataclass
class Plan:
    budget_s: float  # the whole budget, seconds
    total_steps: int  # optimizer steps the run takes in all
    epochs: int  # epochs it begins (the last may end before the loader's end, at total_steps)
    steps_per_s: float  # measured, steady state
    eval_s: float  # measured seconds per val pass
    made_at_step: int
    made_at_s: float  # budget seconds spent when the plan was made
    train_s: float = 0.0  # seconds of training steps done when it was made (or last revised)
    revisions: list = field(default_factory=list)  # [{at_step, total_steps, epochs, steps_per_s}, ...]
    fixed_share: float = 1.0  # progressive resizing: a step's cost that its side does not change (1: all of it)

    def to_dict(self) -> dict:
        return asdict(self)

    def checks(self) -> list[int]:
        """The steps at which the plan is looked at again: at REVISE_AT shares of the planned steps,
        each placed after the look before it, over the steps that look left: with no revision,
        the shares of the plan as made; after one, the remaining looks spread over the new plan.
        A run slowed for a while (another job on the CPU) is revised down, and would otherwise
        meet no further look before its new end however fast it got again. Every look is in
        `revisions` (moved or not), so the steps follow from the plan's record: the same on resume."""
        step, total, done = self.made_at_step, self.first_total, 0.0
        out = []
        for k, f in enumerate(REVISE_AT):
            step += max(1, int((f - done) / (1 - done) * (total - step)))
            out.append(step)
            if k >= len(self.revisions):  # the next look: the ones after it depend on what it finds
                break
            step, total, done = self.revisions[k]["at_step"], self.revisions[k]["total_steps"], f
        return out

    @property
    def first_total(self) -> int:
        return self.revisions[0]["from_total"] if self.revisions else self.total_steps

    def last_check(self) -> tuple[int, float]:
        """(step, training seconds) where the speed was last measured from."""
        if self.revisions:
            return self.revisions[-1]["at_step"], self.revisions[-1]["train_s"]
        return self.made_at_step, self.train_s

    def step_done(self, step: int) -> bool:
        return step >= self.total_steps

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        return cls(**d)


def evaluates(epoch: int, eval_every: int) -> bool:
    """Whether the end of epoch `epoch` (counted from 1) has a val pass under `train.eval_every`:
    every `eval_every`-th epoch; 0 = none but the final one, which always has one."""
    return eval_every > 0 and epoch % eval_every == 0


def val_passes(epochs_done: int, epochs: int, eval_every: int = 1) -> int:
    """Val passes at the ends of epochs epochs_done+1 .. epochs, the last (the final evaluation) included."""
    if eval_every <= 0:
        return 1
    return epochs // eval_every - epochs_done // eval_every + (0 if evaluates(epochs, eval_every) else 1)


def plan_steps(budget_s: float, spent_s: float, step: int, epochs_done: int, steps_per_epoch: int,
               steps_per_s: float, eval_s: float, safety: float = SAFETY, final_extra_s: float = 0.0,
               eval_every: int = 1, work: Callable[[int], float] | None = None) -> tuple[int, int]:
    """(total steps, epochs): the most steps such that the steps still to take at `steps_per_s`,
    plus a val pass of `eval_s` for every epoch from here on that has one (every `eval_every`-th,
    and the last, partial or not, always) and `final_extra_s` for the last one (test-time
    augmentation), fit in the time left after `spent_s` and the safety share. `work(total)`: the
    steps from `step` to `total` in units that `steps_per_s` counts (full-size steps, where
    progressive resizing makes steps differ); by default each step is one."""
    left = budget_s * (1 - safety) - spent_s - final_extra_s
    work = work or (lambda total: total - step)

    def epochs_for(total: int) -> int:
        return max(epochs_done + 1, -(-total // steps_per_epoch))

    def cost(total: int) -> float:  # seconds from now; grows with total
        return work(total) / steps_per_s + val_passes(epochs_done, epochs_for(total), eval_every) * eval_s

    if steps_per_s <= 0 or cost(step + 1) > left:
        return step, epochs_for(step)
    lo, hi = step + 1, step + 1 + int(left * steps_per_s)  # cost(lo) fits; cost(hi) not while a step costs >= 1
    while cost(hi) <= left:  # cheaper steps (progressive resizing): more of them fit
        lo, hi = hi, step + 2 * (hi - step)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if cost(mid) <= left else (lo, mid)
    return lo, epochs_for(lo)


def _work(progressive: Progressive | None, step: int, fixed: float) -> Callable[[int], float] | None:
    """plan_steps' `work` for a run whose steps from `step` on follow `progressive`'s sides."""
    if progressive is None:
        return None
    return lambda total: progressive.work(step, total, total, fixed)


class Planner:
    """Watches steps go by on the budget clock and makes the Plan once it has seen enough. With
    progressive resizing it measures twice, at the start side (phase 0), then at the full side."""

    def __init__(self, budget_s: float, steps_per_epoch: int, skip_steps: int = 5, min_steps: int = 10,
                 progressive: Progressive | None = None):
        if budget_s <= 0:
            raise TinyVisionError(f"train.time_budget must be positive, got {budget_s}")
        self.budget_s, self.steps_per_epoch = budget_s, steps_per_epoch
        self.skip_steps, self.min_steps = skip_steps, min_steps
        # steps not timed after the switch to the full side, as at the start: new shapes pay kernel
        # set-up and the allocator's growth again (skipping 2, the full side was timed 25-30% slower
        # than it later trained on Tiny ImageNet; README, "Progressive resizing")
        self.warmup_steps = skip_steps
        # measure for 4% of the budget, between 1 and 120 seconds: long enough to average out noise
        self.window_s = min(max(0.04 * budget_s, 1.0), 120.0)
        self.progressive = progressive
        self.phases = 1 if progressive is None else 2  # each gets an equal share of the window and of the cap
        self.phase = 0
        self.rates: list[float] = []  # steps/s measured in each finished phase
        self._start: tuple[int, float] | None = None  # (step, seconds) when the timed window began

    def side(self) -> int | None:
        """The side of the batches trained while measuring (None: as configured)."""
        if self.progressive is None:
            return None
        return self.progressive.start if self.phase == 0 else self.progressive.full

    def observe(self, step: int, train_s: float, spent_s: float) -> bool:
        """Note that `step` steps are done after `train_s` seconds of training steps (val passes and
        checkpoints excluded) and `spent_s` budget seconds; True once this phase's measurement is done."""
        if step < self.skip_steps:
            return False
        if self._start is None:
            self._start = (step, train_s)
            return False
        steps, seconds = step - self._start[0], train_s - self._start[1]
        enough = steps >= self.min_steps and seconds >= self.window_s / self.phases
        cap = 0.1 * self.budget_s * (self.phase + 1) / self.phases  # never spend more than 10% measuring
        return enough or spent_s >= cap and steps >= 1

    def next_phase(self, step: int, train_s: float) -> bool:
        """This phase's measurement is done (every rank calls it, so all train the same side next):
        True when another phase begins, False when it is time to make the plan."""
        if self._start is not None:  # only the rank that observes has timed anything
            self.rates.append((step - self._start[0]) / max(train_s - self._start[1], 1e-9))
        if self.phase + 1 >= self.phases:
            return False
        self.phase += 1
        self.skip_steps, self._start = step + self.warmup_steps, None
        return True

    def make(self, step: int, spent_s: float, epochs_done: int, eval_s: float, train_s: float,
             final_extra_s: float = 0.0, eval_every: int = 1) -> Plan:
        """The plan from here: `step` steps done, `spent_s` budget seconds used, val passes of `eval_s`
        (the final one `final_extra_s` longer) after every `eval_every`-th epoch and the last."""
        if len(self.rates) < self.phases:  # called without next_phase (the measurement's last phase)
            self.next_phase(step, train_s)
        rate, fixed = self.rates[-1], 1.0  # the last phase's side is the full one
        if self.progressive is not None:
            fixed = self.progressive.fixed_share(self.rates[0], self.rates[-1])
        total, epochs = plan_steps(self.budget_s, spent_s, step, epochs_done, self.steps_per_epoch, rate, eval_s,
                                   final_extra_s=final_extra_s, eval_every=eval_every,
                                   work=_work(self.progressive, step, fixed))
        return Plan(self.budget_s, total, epochs, rate, eval_s, step, spent_s, train_s, fixed_share=fixed)


def revise(plan: Plan, step: int, spent_s: float, train_s: float, epochs_done: int, steps_per_epoch: int,
           eval_s: float, final_extra_s: float, eval_every: int = 1,
           progressive: Progressive | None = None) -> int | None:
    """At one of plan.checks(): the new last step from the speed measured since the last look,
    recorded in the plan, or None when it moves by less than REVISE_MIN of the steps still to take."""
    s0, t0 = plan.last_check()
    done = step - s0 if progressive is None else progressive.work(s0, step, plan.total_steps, plan.fixed_share)
    rate = done / max(train_s - t0, 1e-9)
    total, epochs = plan_steps(plan.budget_s, spent_s, step, epochs_done, steps_per_epoch, rate, eval_s,
                               final_extra_s=final_extra_s, eval_every=eval_every,
                               work=_work(progressive, step, plan.fixed_share))
    moved = abs(total - plan.total_steps) > REVISE_MIN * max(plan.total_steps - step, 1)
    plan.revisions.append({"at_step": step, "train_s": train_s, "steps_per_s": rate, "from_total": plan.total_steps,
                           "total_steps": total if moved else plan.total_steps,
                           "epochs": epochs if moved else plan.epochs})
    if not moved:
        return None
    plan.total_steps, plan.epochs = total, epochs
    return total
