"""fit(config) -> summary: the one wiring function, read top to bottom.

device -> run dir -> data -> model -> optimizer and schedule -> loaders -> (resume) ->
epochs of train_one_epoch + evaluate -> checkpoints, metrics, run record, summary.json.
"""
from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from tinyvision.atomic import write_text
from tinyvision.checkpoint import load_checkpoint, save_checkpoint
from tinyvision.data import cache_root, prepare
from tinyvision.data.augment import build_augment, parse_policy
from tinyvision.data.loader import BatchLoader, batch_generator
from tinyvision.data.rowfile import read_rows
from tinyvision.device import PROBE_RECORD, precision_name, resolve_channels_last, resolve_device, resolve_precision
from tinyvision.engine.config import Config, save_config
from tinyvision.engine.distributed import Dist, init_distributed, shutdown
from tinyvision.engine.interrupt import Interrupted, StopSignals
from tinyvision.engine.lookahead import Lookahead
from tinyvision.engine.loop import (autocast, evaluate, evaluate_segmentation, pixel_correct, segmentation_loss,
                                    topk_correct, train_loss)
from tinyvision.engine.mixing import mix_batch
from tinyvision.engine.monitor import Monitor
from tinyvision.engine.optim import Schedule, build_optimizer
from tinyvision.engine.plan import Plan, Planner, evaluates, revise
from tinyvision.engine.progressive import Progressive, progressive_from_config
from tinyvision.engine.rng import rng_state, set_rng_state
from tinyvision.engine.runlog import Meter, RunLog
from tinyvision.engine.transfer import (HeadOnly, depth_groups, feature_splits, first_layers, freeze_batchnorm,
                                        param_groups_by_depth, set_trainable, trainable_depth)
from tinyvision.errors import TinyVisionError
from tinyvision.models import create_model, summarize
from tinyvision.models.heads import dense_head
from tinyvision.models.pretrained import load_pretrained
from tinyvision.models.registry import get_entry
from tinyvision.runs import RunRecord, claim_run_dir, default_run_dir, write_record
from tinyvision.tta import passes as tta_passes
from tinyvision.tta import resolve as resolve_tta

MIX_STREAM = 1 << 20  # offsets the rank in batch_generator: mixing draws apart from augmentation

__all__ = ["FitHooks", "Interrupted", "fit", "train_one_epoch"]


@dataclass
class FitHooks:
    """Callbacks for a caller that steers training (the search): both optional."""

    epoch_end: Callable[[int, dict], bool] | None = None  # (epochs done, val metrics) -> False to stop (pruned)
    should_stop: Callable[[], bool] | None = None  # polled every step: True writes last.pt, raises Interrupted
    clock: Callable[[], float] = time.perf_counter  # seconds; what the run and its time budget are timed by


# ----------------------------------------------------------------- set-up steps
def setup_device(t, dist: Dist, ckpt: dict | None,
                 probe_record: Path | None = None) -> tuple[torch.device, torch.dtype | None, bool]:
    """(device, autocast dtype or None, channels_last) as train.* asks, threads set on CPU. A
    resumed run keeps the precision its start chose; the ranks of a DDP run take rank 0's; the CPU
    bf16 probe is kept in `probe_record` (tinyvision.device.host_bf16_speedup)."""
    device = resolve_device(t.device, dist.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        per_process = (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size))
        torch.set_num_threads(t.threads or max(1, per_process))
    amp_dtype = resolve_precision(t.precision, device, ckpt["record"].get("precision") if ckpt else None,
                                  probe_record=probe_record)
    if dist.enabled and t.precision == "auto" and device.type == "cpu":  # each rank timed its own CPU
        amp_dtype = torch.bfloat16 if dist.any(dist.main and amp_dtype is torch.bfloat16, device) else None
    return device, amp_dtype, resolve_channels_last(t.channels_last, device, amp_dtype)


def check_input_size(name: str, size: int) -> None:
    entry = get_entry(name)
    if entry.input_sizes and size not in entry.input_sizes:
        sizes = ", ".join(map(str, entry.input_sizes))
        raise TinyVisionError(f"model {name} takes {sizes} px inputs, the data gives {size} px; "
                              f"set augment.size={entry.input_sizes[0]} or data.image_size={entry.input_sizes[0]}")
    if size < entry.min_size:
        raise TinyVisionError(f"model {name} needs inputs of at least {entry.min_size} px, the data gives {size} px")


def normalization(model_name: str, ds, tr, data_spec: str = "dataset") -> tuple[tuple, tuple]:
    """data.normalize's mean/std, or the pretrained backbone's own (what its weights expect)."""
    if tr.normalize == "dataset" or (tr.normalize == "auto" and not tr.pretrained):
        return ds.normalization(data_spec)
    norm = get_entry(model_name).normalization
    if not norm:
        raise TinyVisionError(f"model {model_name} does not say how its weights normalize inputs; "
                              "set transfer.normalize=dataset")
    return tuple(norm["mean"]), tuple(norm["std"])


def check_task(cfg: Config, ds) -> None:
    """data.task against the dataset's, and what segmentation cannot do."""
    if cfg.data.task not in ("auto", ds.task):
        raise TinyVisionError(f"data.task {cfg.data.task!r}, but {ds.name} is a {ds.task} dataset")
    if ds.task == "segmentation":
        if cfg.optim.mixup or cfg.optim.cutmix:
            raise TinyVisionError("mixup and cutmix mix class labels; for segmentation set optim.mixup=0, optim.cutmix=0")
        if cfg.transfer.mode == "features":
            raise TinyVisionError("transfer.mode=features trains a classifier on pooled features; for segmentation "
                                  "use transfer.mode=full or gradual")
        if cfg.train.monitor == "top1":
            raise TinyVisionError("train.monitor top1 is a classification metric; for segmentation use miou or loss")
        if resolve_tta(cfg.train.tta) not in (None, "flip"):
            raise TinyVisionError(f"train.tta {cfg.train.tta!r} shifts images, which a mask would have to follow; "
                                  "for segmentation use train.tta=flip or false")


def check_progressive(cfg: Config, ds) -> Progressive | None:
    """augment.progressive_from's schedule, once the data says what the full size is; what
    progressive resizing cannot do is an error here."""
    full = cfg.augment.size or ds.image_size[0]
    progressive = progressive_from_config(cfg.augment, full)
    if progressive is None:
        return None
    if ds.task != "classification":
        raise TinyVisionError("augment.progressive_from resizes images only; for segmentation set it to 0")
    if cfg.transfer.mode == "features":
        raise TinyVisionError("transfer.mode=features trains on cached features, which have no side to grow; "
                              "set augment.progressive_from=0")
    if cfg.augment.size is None and ds.image_size[0] != ds.image_size[1]:
        raise TinyVisionError(f"augment.progressive_from needs square inputs; {ds.name} is cached at "
                              f"{ds.image_size[0]}x{ds.image_size[1]}: set augment.size")
    if get_entry(cfg.model.name).input_sizes:
        raise TinyVisionError(f"model {cfg.model.name} takes a fixed input size, so its batches cannot grow; "
                              "set augment.progressive_from=0")
    check_input_size(cfg.model.name, progressive.start)
    return progressive


def load_data(cfg: Config, dist: Dist):
    """The dataset (rank 0 builds the cache, the others then read it) and the run's splits."""
    if not dist.main:
        dist.barrier()
    ds = prepare(cfg.data.name, cfg.data.source, image_size=cfg.data.image_size, cache_dir=cfg.data.cache_dir,
                 progress=dist.main and not cfg.output.quiet)
    if dist.main:
        dist.barrier()
    d = cfg.data
    return ds, ds.training_splits(holdout=d.holdout, val_split=d.val_split, seed=cfg.train.seed,
                                  limit_train=d.limit_train)


# ----------------------------------------------------------------- the run
@dataclass
class Run:
    """Everything one training process holds. `checkpoint()` turns it into plain data."""

    cfg: Config
    run_dir: Path
    dist: Dist
    device: torch.device
    amp_dtype: torch.dtype | None
    model: nn.Module  # the plain module: what is saved and evaluated
    train_model: nn.Module  # what steps: model, maybe compiled, maybe DDP-wrapped
    ema: object | None
    lookahead: Lookahead | None
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    scaler: torch.amp.GradScaler
    train_loader: BatchLoader
    val_loader: BatchLoader
    log: RunLog
    record: RunRecord
    monitor: Monitor
    started: float  # clock() when this process began the run (this segment)
    budget_started: float = 0.0  # clock() when this segment's budgeted time began (after the data was ready)
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    last_val: dict = field(default_factory=dict)
    elapsed_before: float = 0.0  # wall seconds of earlier segments of this run (before resumes)
    train_images: int = 0
    train_seconds: float = 0.0
    meter_sums: torch.Tensor | None = None  # the epoch's running train sums (Meter.state), for mid-epoch resume
    trainable: set | None = None  # names of the parameters this epoch trains (None: all)
    hooks: FitHooks = field(default_factory=FitHooks)
    signals: StopSignals | None = None
    planner: Planner | None = None  # with train.time_budget, until the plan is made
    plan: Plan | None = None
    budget_before: float = 0.0  # budgeted seconds spent by earlier segments
    data_seconds: float = 0.0  # seconds this segment spent building or opening the cache (not budgeted)
    cut: bool = False  # the deadline stopped training before the planned steps were done
    last_eval_s: float | None = None  # how long this segment's last val pass took
    progressive: Progressive | None = None  # augment.progressive_from's schedule of training sides
    side: int | None = None  # the side of the training batches now (progressive resizing)

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def elapsed(self) -> float:
        """Wall seconds of the whole run so far, over all its segments."""
        return self.elapsed_before + self.hooks.clock() - self.started

    def budget_spent(self) -> float:
        """Seconds of the time budget spent so far, over all segments (cache builds excluded)."""
        return self.budget_before + self.hooks.clock() - self.budget_started

    @property
    def total_steps(self) -> int:
        """Optimizer steps this run takes in all: the plan's under a time budget."""
        return self.plan.total_steps if self.plan is not None else self.cfg.train.epochs * len(self.train_loader)

    @property
    def epochs(self) -> int:
        """Epochs this run trains: the plan's under a time budget, else train.epochs."""
        return self.plan.epochs if self.plan is not None else self.cfg.train.epochs

    def checkpoint(self, meter: Meter | None) -> dict:
        ckpt = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "loader": self.train_loader.state_dict(),
            "rng": rng_state(),
            "config": self.cfg.to_dict(),
            "meter": meter.state() if meter is not None else None,
            "progress": {**self.monitor.state_dict(), "last_val": self.last_val, "elapsed": self.elapsed(),
                         "train_images": self.train_images, "train_seconds": self.train_seconds,
                         "log_offset": self.log.offset(), "budget_spent": self.budget_spent(), "cut": self.cut},
            "plan": self.plan.to_dict() if self.plan is not None else None,
            "record": self.record.to_dict(),
        }
        if self.ema is not None:
            ckpt["ema"] = self.ema.module.state_dict()
        if self.lookahead is not None:
            ckpt["lookahead"] = self.lookahead.state_dict()
        return ckpt

    def save(self, names: tuple[str, ...], meter: Meter | None = None) -> None:
        if self.dist.main:
            ckpt = self.checkpoint(meter)
            for name in names:
                save_checkpoint(ckpt, self.ckpt_dir / f"{name}.pt")

    def restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        if self.ema is not None and "ema" in ckpt:
            self.ema.module.load_state_dict(ckpt["ema"])
        if self.lookahead is not None and "lookahead" in ckpt:
            self.lookahead.load_state_dict(ckpt["lookahead"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.train_loader.load_state_dict(ckpt["loader"])
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        p = ckpt["progress"]
        self.monitor.load_state_dict(p)
        self.last_val = p["last_val"]
        self.elapsed_before, self.train_images, self.train_seconds = p["elapsed"], p["train_images"], p["train_seconds"]
        self.budget_before, self.cut = p.get("budget_spent", 0.0), p.get("cut", False)
        if ckpt.get("plan") is not None:  # the plan it made: its steps and learning rates stay as they were
            self.set_plan(Plan.from_dict(ckpt["plan"]))
        self.meter_sums = ckpt["meter"]
        set_rng_state(ckpt["rng"])

    def set_plan(self, plan: Plan) -> None:
        self.plan, self.planner = plan, None
        self.schedule.set_total(plan.first_total)  # revisions live in the schedule's own knots

    def resize_train_batches(self) -> None:
        """Progressive resizing: the next training batch's side, from the planner while it measures
        (the start side, then the full one), else from the step and the run's steps in all."""
        if self.progressive is None:
            return
        side = self.planner.side() if self.planner is not None else self.progressive.side(self.step, self.total_steps)
        if side != self.side:
            self.train_loader.transform.resize_to(side)
            self.side = side

    def make_plan(self, train_seconds: float) -> None:
        """Measure a val pass on a few batches, then fix the steps (rank 0 decides, all ranks follow)."""
        model = self.ema.module if self.ema is not None else self.model
        n = min(len(self.val_loader), 3)
        self.validate(model, max_batches=1, dist=False)  # warm-up
        t0 = self.hooks.clock()
        self.validate(model, max_batches=n, dist=False)
        eval_s = (self.hooks.clock() - t0) / n * len(self.val_loader)
        plan = None  # only rank 0 measured the speed (Planner.observe), so only it plans
        if self.dist.main:
            plan = self.planner.make(self.step, self.budget_spent(), self.epoch, eval_s, train_seconds,
                                     final_extra_s=eval_s * (tta_passes(self.cfg.train.tta) - 1),  # the TTA views
                                     eval_every=self.cfg.train.eval_every)
        if self.dist.enabled:  # one plan for every rank: rank 0's
            v = torch.tensor([plan.total_steps, plan.epochs, plan.steps_per_s, plan.eval_s, plan.made_at_s,
                              plan.fixed_share] if self.dist.main else [0.0] * 6, dtype=torch.float64, device=self.device)
            total, epochs, rate, ev, at, fixed = self.dist.sum(v).tolist()
            plan = Plan(self.planner.budget_s, int(total), int(epochs), rate, ev, self.step, at, train_seconds,
                        fixed_share=fixed)
        self.set_plan(plan)
        room = plan.total_steps > self.step  # False: not one more step fits before the final evaluation
        self.log.write({"type": "plan", "step": self.step, **plan.to_dict(), "room": room}, "plan")
        self.log.print(f"time budget {plan.budget_s:.0f} s: {plan.steps_per_s:.2f} steps/s measured, val pass "
                       f"{plan.eval_s:.1f} s; planned {plan.total_steps} steps ({plan.epochs} epochs) "
                       f"after {plan.made_at_s:.0f} s")
        if not room:
            final_s = plan.eval_s * tta_passes(self.cfg.train.tta)
            over = plan.made_at_s + final_s > plan.budget_s  # no step fits within the safety share, yet it may end in time
            self.log.print(f"warning: train.time_budget {plan.budget_s:.0f} s is too short on this machine: "
                           f"{plan.made_at_s:.0f} s went on warm-up and timing and the final evaluation needs "
                           f"about {final_s:.0f} s more, so training stops now"
                           + (" and the run will overrun its budget" if over else ""))

    def revise_plan(self, train_seconds: float) -> None:
        """At one of the plan's check steps: re-measure the speed since the last look and move the
        last step (and the schedule's end with it, continuously) if the budget asks for it."""
        eval_s = self.last_eval_s or self.plan.eval_s
        before = self.plan.total_steps
        if self.dist.main:
            revise(self.plan, self.step, self.budget_spent(), train_seconds, self.epoch, len(self.train_loader), eval_s,
                   eval_s * (tta_passes(self.cfg.train.tta) - 1), self.cfg.train.eval_every, self.progressive)
        if self.dist.enabled:  # rank 0's revision for every rank
            v = torch.tensor([self.plan.total_steps, self.plan.epochs] if self.dist.main else [0, 0],
                             dtype=torch.float64, device=self.device)
            total, epochs = (int(x) for x in self.dist.sum(v).tolist())
            if not self.dist.main:  # the same record of it, so that every rank's plan.checks() agree
                self.plan.revisions.append({"at_step": self.step, "train_s": train_seconds, "steps_per_s": 0.0,
                                            "from_total": before, "total_steps": total, "epochs": epochs})
            self.plan.total_steps, self.plan.epochs = total, epochs
        if self.plan.total_steps != before:
            self.schedule.retarget(self.step, self.plan.total_steps)
            self.log.write({"type": "plan", "step": self.step, **self.plan.to_dict()}, "plan")
            self.log.print(f"time budget: revised at step {self.step}: {self.plan.total_steps} steps "
                           f"({self.plan.epochs} epochs), was {before}")

    def out_of_time(self) -> bool:
        """Past the plan's last step, or the budget would not leave time for the final val pass."""
        if self.plan is None:
            return False
        if self.step >= self.plan.total_steps:
            return True
        final_s = self.plan.eval_s * tta_passes(self.cfg.train.tta)
        late = self.budget_spent() + final_s > self.plan.budget_s
        if self.dist.any(late, self.device):
            self.cut = True
            self.log.print(f"time budget: stopping at step {self.step} of {self.plan.total_steps} to leave "
                           f"{final_s:.1f} s for the final evaluation")
            return True
        return False

    def validate(self, model: nn.Module, tta: str | None = None, max_batches: int | None = None, dist=True) -> dict:
        """The val metrics: loss, top1, top5 (classification) or miou, dice, pixel_acc (segmentation), n."""
        d = self.dist if dist else None
        if self.record.task == "segmentation":
            v = evaluate_segmentation(model, self.val_loader, self.record.num_classes, self.record.ignore_index,
                                      self.amp_dtype, d, tta, max_batches)
            return {k: v[k] for k in ("loss", "miou", "dice", "pixel_acc", "n")}
        return evaluate(model, self.val_loader, self.amp_dtype, d, tta, max_batches)

    def stop_requested(self) -> bool:
        """A signal arrived or the caller asks to stop, on any rank."""
        asked = self.hooks.should_stop is not None and self.hooks.should_stop()
        signalled = self.signals is not None and self.signals.signum is not None
        return self.dist.any(signalled or asked, self.device)


# ----------------------------------------------------------------- one epoch
def _check_finite(run: Run, loss: torch.Tensor) -> None:
    bad = run.dist.any(not bool(torch.isfinite(loss.detach()).item()), run.device)
    if bad:
        last = run.ckpt_dir / "last.pt"
        kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint had been written yet"
        raise TinyVisionError(f"loss became {loss.item()} at step {run.step} (epoch {run.epoch + 1}); run stopped, "
                              f"{kept}. Try a lower optim.lr, optim.grad_clip=1.0 or train.precision=fp32")


def _train_mode(run: Run) -> None:
    run.train_model.train()
    if run.trainable is not None or run.cfg.transfer.freeze_bn:  # frozen groups keep their statistics
        frozen = None if run.cfg.transfer.freeze_bn else {n for n, _ in run.model.named_parameters()} - run.trainable
        freeze_batchnorm(run.model, frozen)


def train_one_epoch(run: Run) -> dict:
    """Train until the loader's epoch ends (or a time budget's plan or deadline says stop);
    checkpoints every `checkpoint_every` steps and on a signal."""
    cfg, loader, model, clock = run.cfg, run.train_loader, run.train_model, run.hooks.clock
    o, t = cfg.optim, cfg.train
    _train_mode(run)
    meter = Meter(run.device)
    if run.meter_sums is not None:  # resumed mid-epoch: carry on the epoch's running sums
        meter.load_state(run.meter_sums)
        run.meter_sums = None
    run.log.start_epoch(run.epoch, run.epochs, len(loader), loader.batch_index)
    mixing = o.mixup > 0 or o.cutmix > 0
    check_every = 1 if run.device.type == "cpu" else t.log_every  # a host sync per step is free on CPU only
    t_window, t_start, images = clock(), clock(), 0
    run.resize_train_batches()
    for x, y in loader:
        soft = None
        if mixing:
            g = batch_generator(x.device, t.seed, loader.epoch, loader.batch_index - 1, run.dist.rank + MIX_STREAM)
            x, soft = mix_batch(x, y, run.record.num_classes, g, o.mixup, o.cutmix, o.mix_switch_prob,
                                o.label_smoothing)
        segmenting = run.record.task == "segmentation"
        with autocast(run.device, run.amp_dtype):
            if segmenting:
                loss, logits = segmentation_loss(model(x), y, o.label_smoothing, cfg.model.aux_weight,
                                                 run.record.ignore_index)
            else:
                loss, logits = train_loss(model(x), y, soft, o.label_smoothing, cfg.model.aux_weight)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        if o.grad_clip > 0:
            run.scaler.unscale_(run.optimizer)
            nn.utils.clip_grad_norm_(run.model.parameters(), o.grad_clip)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.schedule.step()
        run.step += 1
        if run.ema is not None:
            run.ema.update(run.model, step=run.step)
        if run.lookahead is not None:
            run.lookahead.update(run.model, run.step, run.total_steps)
        if segmenting:  # the meter's "top1": the batch's pixel accuracy, weighted by its images
            hits, valid = pixel_correct(logits.detach(), y, run.record.ignore_index)
            meter.add(loss, hits.double() / valid.clamp(min=1) * len(y), len(y))
        else:
            meter.add(loss, topk_correct(logits.detach(), y, (1,))[0], len(y))
        images += len(y)
        saving = t.checkpoint_every > 0 and run.step % t.checkpoint_every == 0
        logging_now = run.step % t.log_every == 0
        if saving or logging_now or run.step % check_every == 0:
            _check_finite(run, loss)
        if logging_now:
            now = clock()
            window = meter.since_last_read()
            rate = window["n"] * run.dist.world_size / max(now - t_window, 1e-9)
            t_window = now
            run.log.write({"type": "step", "step": run.step, "epoch": run.epoch + loader.batch_index / len(loader),
                           "train_loss": window["loss"], "lr": run.schedule.lr, "images_per_s": rate,
                           **({"side": run.side} if run.side else {})}, "train")
            run.log.progress(1, loss=window["loss"], acc=meter.read()["top1"], lr=run.schedule.lr, img_s=round(rate))
        else:
            run.log.progress(1)
        if run.planner is not None:  # under a time budget: measuring, until the plan is made
            trained = run.train_seconds + clock() - t_start
            if run.dist.any(run.dist.main and run.planner.observe(run.step, trained, run.budget_spent()), run.device):
                if not run.planner.next_phase(run.step, trained):  # another phase: the full side, timed next
                    t_plan = clock()
                    run.make_plan(trained)
                    _train_mode(run)  # the val batches timed for the plan ran in eval mode
                    # ...and are not training: kept out of train_seconds, so the plan's first revision
                    # (and the epoch's images/s) measure training steps only
                    paused = clock() - t_plan
                    t_start, t_window = t_start + paused, t_window + paused
        elif run.plan is not None and run.step in run.plan.checks():
            run.revise_plan(run.train_seconds + clock() - t_start)
        if saving:
            run.save(("last",), meter)
        if run.stop_requested():
            run.train_images += images * run.dist.world_size
            run.train_seconds += clock() - t_start
            run.save(("last",), meter)
            raise Interrupted(run.signals.signum if run.signals else None, run.run_dir, run.step)
        if run.out_of_time():
            break
        run.resize_train_batches()  # before the loader makes the next batch
    seconds = clock() - t_start
    run.train_images += images * run.dist.world_size
    run.train_seconds += seconds
    stats = meter.read()
    if run.dist.enabled:  # the epoch's train loss / accuracy over all ranks
        sums = run.dist.sum(meter.sums.clone()).tolist()
        stats = {"loss": sums[0] / max(sums[2], 1), "top1": sums[1] / max(sums[2], 1), "n": int(sums[2])}
    stats["images_per_s"] = images * run.dist.world_size / max(seconds, 1e-9)
    return stats


def train_epochs(run: Run, head_model: nn.Module | None) -> str:
    """Epochs until the config's count, early stopping or the caller's pruning; returns how it ended."""
    cfg, log, monitor = run.cfg, run.log, run.monitor
    t, tr = cfg.train, cfg.transfer
    while run.epoch < run.epochs or run.planner is not None:  # measuring for a plan: no epoch count yet
        if run.plan is not None and run.step >= run.plan.total_steps:
            break
        t_epoch = run.hooks.clock()
        if run.train_loader.epoch != run.epoch:
            run.train_loader.set_epoch(run.epoch)
        if tr.mode != "full":
            depth = trainable_depth(run.epoch, tr.unfreeze, tr.mode, len(depth_groups(run.model)))
            run.trainable = set(set_trainable(run.model, depth))
        if tr.freeze_first:  # the first layers stay frozen whatever the mode unfreezes
            frozen = first_layers(run.model, tr.freeze_first)
            for name, p in run.model.named_parameters():
                if name in frozen:
                    p.requires_grad_(False)
            run.trainable = (run.trainable or {n for n, _ in run.model.named_parameters()}) - frozen
        train = train_one_epoch(run)
        eval_model = run.ema.module if run.ema is not None else run.model
        if head_model is not None:
            eval_model = HeadOnly(eval_model)
        final = run.cut or (run.plan.step_done(run.step) if run.plan is not None else
                            run.planner is None and run.epoch + 1 >= run.epochs)
        if final and run.lookahead is not None:
            run.lookahead.finish(run.model)
        val, improved = {}, False
        if final or evaluates(run.epoch + 1, t.eval_every):
            t_eval = run.hooks.clock()
            val = run.validate(eval_model, tta=resolve_tta(t.tta) if final else None)
            if not final:  # a plain pass: what the plan's next revision counts per epoch
                run.last_eval_s = run.hooks.clock() - t_eval
        run.epoch += 1
        if val:
            run.last_val = {**val, "epoch": run.epoch}
            run.schedule.epoch_end(monitor.value(val))
            improved = monitor.update(run.epoch, run.last_val)
        seconds = run.hooks.clock() - t_epoch
        log.write({"type": "epoch", "step": run.step, "epoch": run.epoch, "train_loss": train["loss"],
                   "train_top1": train["top1"], **{f"val_{k}": v for k, v in val.items() if k != "n"},
                   "lr": run.schedule.lr, "images_per_s": train["images_per_s"],
                   "seconds": seconds, "spent_s": run.budget_spent()}, "epoch")
        shown = "  ".join(f"{k} {v:.4f}" for k, v in val.items() if k != "n")
        shown = f"{run.record.val_split} {shown}" if val else f"no {run.record.val_split} pass (train.eval_every)"
        log.end_epoch(f"epoch {run.epoch}/{run.epochs}  train loss {train['loss']:.4f} acc {train['top1']:.4f}  "
                      f"{shown}  {train['images_per_s']:.0f} img/s  {seconds:.1f}s")
        run.save(("last", "best") if improved else ("last",))
        if val and run.hooks.epoch_end is not None and not run.hooks.epoch_end(run.epoch, dict(run.last_val)):
            log.print(f"stopped after epoch {run.epoch} by the caller (pruned)")
            return "pruned"
        if monitor.exhausted:
            log.print(f"early stop: no {monitor.metric} improvement for {monitor.bad_epochs} epochs "
                      f"(best at epoch {monitor.best_epoch})")
            return "early-stopped"
        if run.cut:
            return "time-budget"
    return "completed"


# ----------------------------------------------------------------- the wiring
def fit(cfg: Config, resume: bool = False, hooks: FitHooks | None = None) -> dict:
    """Train as `cfg` says; with resume=True continue from RUN_DIR/checkpoints/last.pt.

    Returns the summary (also written to RUN_DIR/summary.json by rank 0)."""
    hooks = hooks or FitHooks()
    started = hooks.clock()
    cfg = copy.deepcopy(cfg).validate()  # fit fills in output.dir; the caller's config stays as it was
    dist = init_distributed("cuda" if resolve_device(cfg.train.device).type == "cuda" else "cpu")
    try:
        return _fit(cfg, resume, dist, hooks, started)
    finally:
        shutdown(dist)


def _fit(cfg: Config, resume: bool, dist: Dist, hooks: FitHooks, started: float) -> dict:
    t = cfg.train
    if cfg.transfer.mode == "gradual" and dist.enabled:
        raise TinyVisionError("gradual unfreezing changes which parameters train, which DDP cannot follow; "
                              "run it in one process, or use transfer.mode=full with transfer.lr_decay")
    parse_policy(cfg.augment.policy)  # a typo in the policy fails here, before any cache or run dir work
    if t.eval_every < 0:
        raise TinyVisionError(f"train.eval_every {t.eval_every}: give N >= 1 (a val pass every N epochs) "
                              "or 0 (the final one only)")
    run_dir, ckpt, resume = open_run_dir(cfg, resume, dist)
    device, amp_dtype, channels_last = setup_device(t, dist, ckpt, cache_root(cfg.data.cache_dir) / PROBE_RECORD)
    t_data = hooks.clock()
    ds, (train_split, val_split, val_name) = load_data(cfg, dist)
    check_task(cfg, ds)
    progressive = check_progressive(cfg, ds)
    budget_started = hooks.clock()  # a time budget counts from here: the cache build is not part of it
    model, record = build_model(cfg, ds, train_split, val_name, ckpt, amp_dtype, channels_last)
    model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    ema = None
    if cfg.optim.ema > 0:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=cfg.optim.ema, use_warmup=True)
    lookahead = Lookahead(model, cfg.optim.lookahead) if cfg.optim.lookahead > 0 else None
    groups = None
    if cfg.transfer.mode != "full" or cfg.transfer.lr_decay != 1.0:
        groups = param_groups_by_depth(model, cfg.optim.weight_decay, cfg.optim.decay_norm_and_bias,
                                       cfg.transfer.lr_decay)
    optimizer = build_optimizer(model, cfg.optim, groups)
    train_loader, val_loader, head_model = build_loaders(cfg, ds, model, record, train_split, val_split, device,
                                                         amp_dtype, dist)
    monitor = Monitor(t.monitor, t.early_stop_patience, record.task)
    schedule = Schedule(optimizer, cfg.schedule, cfg.optim.lr, len(train_loader), t.epochs, monitor.mode)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)
    train_model = head_model if head_model is not None else model
    if t.compile:
        train_model = torch.compile(train_model)
    if dist.enabled:
        train_model = nn.parallel.DistributedDataParallel(train_model, device_ids=[device.index] if device.type == "cuda" else None)
    log = RunLog(run_dir, enabled=dist.main, tensorboard=cfg.output.tensorboard, quiet=cfg.output.quiet,
                 resume_offset=ckpt["progress"]["log_offset"] if ckpt else (0 if resume else None),  # no checkpoint: restart the log
                 resume_step=ckpt["step"] if ckpt else 0)
    run = Run(cfg, run_dir, dist, device, amp_dtype, model, train_model, ema, lookahead, optimizer, schedule, scaler,
              train_loader, val_loader, log, record, monitor, started, budget_started, hooks=hooks,
              data_seconds=budget_started - t_data, progressive=progressive)
    if t.time_budget > 0:
        run.planner = Planner(t.time_budget, len(train_loader), progressive=progressive)
    if dist.main:
        write_record(run_dir, record)
    if ckpt:  # continued exactly where its last checkpoint left off
        run.restore(ckpt)
        log.print(f"resumed {run_dir} at epoch {run.epoch + 1}, step {run.step}")
    else:
        log.print(f"run {run_dir}: {cfg.model.name} ({record.params / 1e6:.2f}M params) on {ds.name} "
                  f"({len(train_split)} train, {len(val_split)} {val_name}), {device}, {record.precision}"
                  f"{', channels_last' if channels_last else ''}{f', {dist.world_size} processes' if dist.enabled else ''}")
    try:
        with StopSignals() as run.signals:  # a signal finishes the step, writes last.pt, then stops
            stopped = train_epochs(run, head_model)
    finally:
        log.close()
    return finish(run, stopped)


def open_run_dir(cfg: Config, resume: bool, dist: Dist) -> tuple[Path, dict | None, bool]:
    """(run dir, its last checkpoint or None, whether resuming): the dir claimed (never silently
    overwritten, see runs.claim_run_dir) and the config saved in it."""
    run_dir = Path(cfg.output.dir or default_run_dir(cfg.data.name, cfg.model.name))
    cfg.output.dir = str(run_dir)
    resume = claim_run_dir(run_dir, resume, cfg.output.if_exists)
    last = run_dir / "checkpoints" / "last.pt"
    ckpt = load_checkpoint(last) if resume and last.exists() else None
    dist.barrier()  # every rank has looked before rank 0 writes
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    return run_dir, ckpt, resume


INIT_IMAGES = 5000  # training images a data-dependent init (a whitening stem) looks at...
INIT_BYTES = 16 << 20  # ...at most this much of them as uint8: 5,000 at 32 px, 54 at 320 px (then 64 MB as
# floats, where 5,000 at 320 px took 6 GB and was the peak RSS of a run streaming a 30 GB cache)


def build_model(cfg: Config, ds, train_split, val_name: str, ckpt: dict | None, amp_dtype, channels_last: bool):
    """(model on the CPU, the run's record). Pretrained weights, or a data-dependent init (models
    with `init_from_data`, given the first INIT_IMAGES training images, at most INIT_BYTES of
    them, normalized), are set for a fresh run; a resumed one takes its weights from its
    checkpoint and keeps its record of where they came from."""
    tr, t = cfg.transfer, cfg.train
    size = cfg.augment.size or ds.image_size[0]
    check_input_size(cfg.model.name, size)
    if get_entry(cfg.model.name).task != ds.task:
        raise TinyVisionError(f"model {cfg.model.name} is a {get_entry(cfg.model.name).task} model and {ds.name} a "
                              f"{ds.task} dataset" + ("; segmentation models: tinyvision models list (family segmentation)"
                                                      if ds.task == "segmentation" else ""))
    torch.manual_seed(t.seed)
    model = create_model(cfg.model.name, num_classes=ds.num_classes, in_chans=ds.channels, **cfg.model.kwargs)
    dense_head(model, cfg.model.head, cfg.model.head_dropout)  # model.head: a dense head for the classifier
    loaded = {}
    if tr.pretrained and ckpt is None:  # a checkpoint with the same dense head loads it; other weights leave it new
        loaded = load_pretrained(model, tr.pretrained, list(ds.class_ids), model_name=cfg.model.name)
    elif ckpt is not None:
        first = ckpt.get("record", {})
        loaded = {"source": first.get("pretrained", ""), "head": first.get("pretrained_head", "")}
    if tr.freeze_first:  # before the optimizer is built, which takes only what trains
        frozen = first_layers(model, tr.freeze_first)
        for name, p in model.named_parameters():
            p.requires_grad_(p.requires_grad and name not in frozen)
    mean, std = normalization(cfg.model.name, ds, tr, cfg.data.normalize)
    if ckpt is None and hasattr(model, "init_from_data"):
        row_bytes = int(np.prod(train_split.images.shape[1:]))
        rows = train_split.rows[: max(1, min(INIT_IMAGES, INIT_BYTES // row_bytes))]
        x = torch.from_numpy(read_rows(train_split.images, rows)).permute(0, 3, 1, 2)
        model.init_from_data(build_augment("none", mean, std, ds.image_size[0], cfg.augment.size)(x))
    facts = summarize(model, size, ds.channels)
    record = RunRecord(
        dataset=ds.name, model=cfg.model.name, num_classes=ds.num_classes, in_chans=ds.channels,
        class_ids=list(ds.class_ids), class_names=list(ds.class_names), mean=list(mean), std=list(std),
        image_size=size, cache_size=ds.image_size[0], cache_shape=list(ds.image_size), model_kwargs=cfg.model.kwargs,
        head=list(cfg.model.head),
        head_dropout=cfg.model.head_dropout, params=facts["params"],
        macs=facts["macs"], precision=precision_name(amp_dtype), channels_last=channels_last,
        eval_batch_size=t.eval_batch_size, val_split=val_name, holdout=cfg.data.holdout, split_seed=t.seed,
        cache=str(ds.path), source=cfg.data.source, cache_dir=cfg.data.cache_dir, prepare_size=cfg.data.image_size,
        pretrained=loaded.get("source", tr.pretrained), pretrained_head=loaded.get("head", ""),
        task=ds.task, ignore_index=ds.ignore_index, tta=resolve_tta(t.tta) or "")
    return model, record


def build_loaders(cfg: Config, ds, model, record: RunRecord, train_split, val_split, device, amp_dtype, dist):
    """(train loader, val loader, head model or None): batches augmented on the device; in
    transfer.mode=features the loaders yield the frozen backbone's cached features instead."""
    t = cfg.train
    ignore = record.ignore_index if record.ignore_index is not None else 255
    eval_aug = build_augment("none", record.mean, record.std, ds.image_size[0], cfg.augment.size, record.channels_last,
                             ignore)
    head_model = None
    if cfg.transfer.mode == "features":
        # The frozen backbone runs once per image; its pooled features are cached beside the dataset
        # and the epochs train the classifier alone on them, so an epoch costs seconds.
        train_split, val_split, head_model = feature_splits(model, cfg, ds, train_split, val_split, eval_aug,
                                                            device, amp_dtype, dist)
        train_aug = val_aug = None
    else:
        train_aug = build_augment(cfg.augment.policy, record.mean, record.std, ds.image_size[0], cfg.augment.size,
                                  record.channels_last, ignore)
        val_aug = eval_aug
    train_loader = BatchLoader(train_split, t.batch_size, shuffle=True, seed=t.seed, device=device, rank=dist.rank,
                               world_size=dist.world_size, transform=train_aug, in_memory=cfg.data.in_memory,
                               repeat=cfg.data.repeat)
    if len(train_loader) == 0:
        raise TinyVisionError(f"train split has {len(train_split)} images, fewer than one batch of {t.batch_size}"
                              + (f" per process ({dist.world_size})" if dist.enabled else ""))
    val_loader = BatchLoader(val_split, t.eval_batch_size, shuffle=False, drop_last=False, seed=t.seed,
                             device=device, rank=dist.rank, world_size=dist.world_size, transform=val_aug)
    return train_loader, val_loader, head_model


def finish(run: Run, stopped: str) -> dict:
    """The summary (RUN_DIR/summary.json, written by rank 0)."""
    r, monitor = run.record, run.monitor
    summary = {
        "dataset": r.dataset, "model": r.model, "val_split": r.val_split,
        "best": {**{k: v for k, v in monitor.best_val.items() if k not in ("n", "epoch")}, "epoch": monitor.best_epoch},
        "final": {k: v for k, v in run.last_val.items() if k != "epoch"},
        "epochs": run.epoch, "steps": run.step, "stopped": stopped,
        "wall_time_s": run.elapsed(), "train_seconds": run.train_seconds,
        "images_per_s": run.train_images / max(run.train_seconds, 1e-9),
        "params": r.params, "monitor": monitor.metric, "ema": run.ema is not None,
        "device": str(run.device), "precision": r.precision, "tta": resolve_tta(run.cfg.train.tta) or "",
        "world_size": run.dist.world_size, "run_dir": str(run.run_dir),
    }
    if run.cfg.train.time_budget > 0:
        summary["time_budget"] = {"budget_s": run.cfg.train.time_budget, "spent_s": run.budget_spent(),
                                  "data_s": run.data_seconds, "cut": run.cut,
                                  "plan": run.plan.to_dict() if run.plan is not None else None}
    if run.dist.main:
        write_text(run.run_dir / "summary.json", json.dumps(summary, indent=2))
    run.dist.barrier()
    return summary
