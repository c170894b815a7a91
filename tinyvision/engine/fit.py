"""fit(config) -> summary: the one wiring function, read top to bottom.

data -> model -> optimizer and schedule -> loaders -> (resume) -> epochs of
train_one_epoch + evaluate -> checkpoints, metrics, summary.json.
"""
from __future__ import annotations

import copy
import json
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from tinyvision.atomic import write_text
from tinyvision.data import prepare
from tinyvision.data.augment import build_augment
from tinyvision.data.loader import BatchLoader, batch_generator
from tinyvision.device import precision_name, resolve_channels_last, resolve_device, resolve_precision
from tinyvision.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from tinyvision.engine.config import Config, save_config
from tinyvision.engine.distributed import Dist, init_distributed, shutdown
from tinyvision.engine.loop import autocast, evaluate, topk_correct, train_loss
from tinyvision.engine.mixing import mix_batch
from tinyvision.engine.optim import Schedule, build_optimizer
from tinyvision.engine.transfer import (HeadOnly, depth_groups, feature_splits, freeze_batchnorm,
                                        param_groups_by_depth, set_trainable, trainable_depth)
from tinyvision.engine.runlog import Meter, RunLog
from tinyvision.errors import TinyVisionError
from tinyvision.models import create_model
from tinyvision.models.pretrained import load_pretrained
from tinyvision.models.registry import get_entry
from tinyvision.models.summary import count_params

MIX_STREAM = 1 << 20  # offsets the rank in batch_generator: mixing draws apart from augmentation


class Interrupted(Exception):
    """SIGINT / SIGTERM arrived, or a hook asked to stop (signum None); a checkpoint was written first."""

    def __init__(self, signum: int | None, run_dir: Path, step: int):
        self.signum, self.run_dir, self.step = signum, run_dir, step
        why = signal.Signals(signum).name if signum else "request"
        super().__init__(f"interrupted by {why} at step {step}; "
                         f"checkpoint saved. Continue with: tinyvision train --resume {run_dir}")


@dataclass
class FitHooks:
    """Callbacks for a caller that steers training (the search): both optional."""

    epoch_end: Callable[[int, dict], bool] | None = None  # (epochs done, val metrics) -> False to stop (pruned)
    should_stop: Callable[[], bool] | None = None  # polled every step: True writes last.pt, raises Interrupted


# ----------------------------------------------------------------- data
def choose_splits(ds, cfg: Config):
    """(train split, val split, val split's name) as the config asks."""
    d = cfg.data
    train = ds.split("train")
    if d.holdout > 0:
        train, val = ds.holdout(d.holdout, seed=cfg.train.seed)
        val_name = "holdout"
    else:
        val_name = d.val_split or ds.val_split
        val = ds.split(val_name)
        if not val.labeled:
            raise TinyVisionError(f"{ds.name}'s {val_name!r} split is unlabeled; validate on another split "
                                  "(data.val_split) or a holdout of train (data.holdout=0.1)")
    if d.limit_train:
        train = train.stratified(count=min(d.limit_train, len(train)), seed=cfg.train.seed)[0]
    return train, val, val_name


def check_input_size(name: str, size: int) -> None:
    entry = get_entry(name)
    if entry.input_sizes and size not in entry.input_sizes:
        sizes = ", ".join(map(str, entry.input_sizes))
        raise TinyVisionError(f"model {name} takes {sizes} px inputs, the data gives {size} px; "
                              f"set augment.size={entry.input_sizes[0]} or data.image_size={entry.input_sizes[0]}")
    if size < entry.min_size:
        raise TinyVisionError(f"model {name} needs inputs of at least {entry.min_size} px, the data gives {size} px")


def normalization(model: nn.Module, ds, tr) -> tuple[tuple, tuple]:
    """The dataset's mean/std, or the pretrained backbone's own (what its weights expect)."""
    if tr.normalize not in ("auto", "dataset", "backbone"):
        raise TinyVisionError(f"transfer.normalize {tr.normalize!r}: choose auto, dataset or backbone")
    if tr.normalize == "dataset" or (tr.normalize == "auto" and not tr.pretrained):
        return tuple(ds.mean), tuple(ds.std)
    norm = getattr(model, "pretrained_normalization", None) or getattr(model, "pretrained_cfg", None) or {}
    if "mean" not in norm:
        raise TinyVisionError(f"{type(model).__name__} does not say how its weights normalize inputs; "
                              "set transfer.normalize=dataset")
    return tuple(norm["mean"]), tuple(norm["std"])


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
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    scaler: torch.amp.GradScaler
    train_loader: BatchLoader
    val_loader: BatchLoader
    log: RunLog
    data_info: dict
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    best: float | None = None
    best_epoch: int = 0
    best_val: dict = field(default_factory=dict)
    last_val: dict = field(default_factory=dict)
    bad_epochs: int = 0
    elapsed: float = 0.0  # wall seconds of earlier segments of this run (before resumes)
    train_images: int = 0
    train_seconds: float = 0.0
    meter_sums: torch.Tensor | None = None  # the epoch's running train sums (Meter.state), for mid-epoch resume
    trainable: set | None = None  # names of the parameters this epoch trains (None: all)
    hooks: FitHooks = field(default_factory=FitHooks)
    stop_signal: int | None = None

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def checkpoint(self, meter: Meter | None, segment_start: float) -> dict:
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
            "progress": {"best": self.best, "best_epoch": self.best_epoch, "best_val": self.best_val,
                         "last_val": self.last_val, "bad_epochs": self.bad_epochs,
                         "elapsed": self.elapsed + time.perf_counter() - segment_start,
                         "train_images": self.train_images, "train_seconds": self.train_seconds,
                         "log_offset": self.log.offset()},
            "data": self.data_info,
        }
        if self.ema is not None:
            ckpt["ema"] = self.ema.module.state_dict()
        return ckpt

    def save(self, names: tuple[str, ...], meter: Meter | None, segment_start: float) -> None:
        if self.dist.main:
            ckpt = self.checkpoint(meter, segment_start)
            for name in names:
                save_checkpoint(ckpt, self.ckpt_dir / f"{name}.pt")

    def restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        if self.ema is not None and "ema" in ckpt:
            self.ema.module.load_state_dict(ckpt["ema"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.train_loader.load_state_dict(ckpt["loader"])
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        p = ckpt["progress"]
        self.best, self.best_epoch, self.bad_epochs = p["best"], p["best_epoch"], p["bad_epochs"]
        self.best_val, self.last_val = p["best_val"], p["last_val"]
        self.elapsed, self.train_images, self.train_seconds = p["elapsed"], p["train_images"], p["train_seconds"]
        self.meter_sums = ckpt["meter"]
        set_rng_state(ckpt["rng"])


def default_run_dir(cfg: Config) -> Path:
    return Path("runs") / f"{cfg.data.name}-{cfg.model.name}-{datetime.now():%Y%m%d-%H%M%S}"


def _existing_run(run_dir: Path) -> bool:
    return (run_dir / "config.yaml").exists() or (run_dir / "checkpoints").exists()


# ----------------------------------------------------------------- one epoch
def _check_finite(run: Run, loss: torch.Tensor) -> None:
    bad = run.dist.any(not bool(torch.isfinite(loss.detach()).item()), run.device)
    if bad:
        last = run.ckpt_dir / "last.pt"
        kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint had been written yet"
        raise TinyVisionError(f"loss became {loss.item()} at step {run.step} (epoch {run.epoch + 1}); run stopped, "
                              f"{kept}. Try a lower optim.lr, optim.grad_clip=1.0 or train.precision=fp32")


def train_one_epoch(run: Run, segment_start: float) -> dict:
    """Train until the loader's epoch ends; checkpoints every `checkpoint_every` steps and on a signal."""
    cfg, loader, model = run.cfg, run.train_loader, run.train_model
    o, t = cfg.optim, cfg.train
    model.train()
    if run.trainable is not None or cfg.transfer.freeze_bn:  # frozen groups keep their statistics
        frozen = None if cfg.transfer.freeze_bn else {n for n, _ in run.model.named_parameters()} - run.trainable
        freeze_batchnorm(run.model, frozen)
    meter = Meter(run.device)
    if run.meter_sums is not None:  # resumed mid-epoch: carry on the epoch's running sums
        meter.load_state(run.meter_sums)
        run.meter_sums = None
    run.log.start_epoch(run.epoch, t.epochs, len(loader), loader.batch_index)
    mixing = o.mixup > 0 or o.cutmix > 0
    check_every = 1 if run.device.type == "cpu" else t.log_every  # a host sync per step is free on CPU only
    t_window, t_start, images = time.perf_counter(), time.perf_counter(), 0
    for x, y in loader:
        soft = None
        if mixing:
            g = batch_generator(x.device, t.seed, loader.epoch, loader.batch_index - 1, run.dist.rank + MIX_STREAM)
            x, soft = mix_batch(x, y, run.data_info["num_classes"], g, o.mixup, o.cutmix, o.mix_switch_prob,
                                o.label_smoothing)
        with autocast(run.device, run.amp_dtype):
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
        meter.add(loss, topk_correct(logits.detach(), y, (1,))[0], len(y))
        images += len(y)
        saving = t.checkpoint_every > 0 and run.step % t.checkpoint_every == 0
        logging_now = run.step % t.log_every == 0
        if saving or logging_now or run.step % check_every == 0:
            _check_finite(run, loss)
        if logging_now:
            now = time.perf_counter()
            window = meter.since_last_read()
            rate = window["n"] * run.dist.world_size / max(now - t_window, 1e-9)
            t_window = now
            run.log.write({"type": "step", "step": run.step, "epoch": run.epoch + loader.batch_index / len(loader),
                           "train_loss": window["loss"], "lr": run.schedule.lr, "images_per_s": rate}, "train")
            run.log.progress(1, loss=window["loss"], acc=meter.read()["top1"], lr=run.schedule.lr, img_s=round(rate))
        else:
            run.log.progress(1)
        if saving:
            run.save(("last",), meter, segment_start)
        asked = run.hooks.should_stop is not None and run.hooks.should_stop()
        if run.dist.any(run.stop_signal is not None or asked, run.device):
            run.train_images += images * run.dist.world_size
            run.train_seconds += time.perf_counter() - t_start
            run.save(("last",), meter, segment_start)
            raise Interrupted(run.stop_signal, run.run_dir, run.step)
    seconds = time.perf_counter() - t_start
    run.train_images += images * run.dist.world_size
    run.train_seconds += seconds
    stats = meter.read()
    if run.dist.enabled:  # the epoch's train loss / accuracy over all ranks
        sums = run.dist.sum(meter.sums.clone()).tolist()
        stats = {"loss": sums[0] / max(sums[2], 1), "top1": sums[1] / max(sums[2], 1), "n": int(sums[2])}
    stats["images_per_s"] = images * run.dist.world_size / max(seconds, 1e-9)
    return stats


# ----------------------------------------------------------------- the wiring
def fit(cfg: Config, resume: bool = False, hooks: FitHooks | None = None) -> dict:
    """Train as `cfg` says; with resume=True continue from RUN_DIR/checkpoints/last.pt.

    Returns the summary (also written to RUN_DIR/summary.json by rank 0)."""
    segment_start = time.perf_counter()
    cfg = copy.deepcopy(cfg)  # fit fills in output.dir; the caller's config stays as it was
    t = cfg.train
    dist = init_distributed("cuda" if resolve_device(t.device).type == "cuda" else "cpu")
    try:
        return _fit(cfg, resume, dist, segment_start, hooks or FitHooks())
    finally:
        shutdown(dist)


def _fit(cfg: Config, resume: bool, dist: Dist, segment_start: float, hooks: FitHooks) -> dict:
    t, tr = cfg.train, cfg.transfer
    # choices checked before any data or model work
    if tr.mode not in ("full", "features", "gradual"):
        raise TinyVisionError(f"transfer.mode {tr.mode!r}: choose full, features or gradual")
    if tr.mode == "gradual" and dist.enabled:
        raise TinyVisionError("gradual unfreezing changes which parameters train, which DDP cannot follow; "
                              "run it in one process, or use transfer.mode=full with transfer.lr_decay")
    if t.monitor not in ("top1", "loss"):
        raise TinyVisionError(f"train.monitor {t.monitor!r}: choose top1 or loss")
    device = resolve_device(t.device, dist.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(t.threads or max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size))))
    amp_dtype = resolve_precision(t.precision, device)
    precision = precision_name(amp_dtype)
    channels_last = resolve_channels_last(t.channels_last, device, amp_dtype)

    # Run dir: never silently overwrite a run.
    run_dir = Path(cfg.output.dir or default_run_dir(cfg))
    cfg.output.dir = str(run_dir)
    last = run_dir / "checkpoints" / "last.pt"
    if _existing_run(run_dir) and not resume:
        if cfg.output.if_exists != "resume":
            raise TinyVisionError(f"{run_dir} already holds a run; continue it with `tinyvision train --resume {run_dir}` "
                                  "(or output.if_exists=resume), or pick another --out")
        resume = True
    if resume and not _existing_run(run_dir):
        raise TinyVisionError(f"{run_dir}: no run to resume (no config.yaml or checkpoints/)")
    ckpt = load_checkpoint(last) if resume and last.exists() else None
    dist.barrier()  # every rank has looked before rank 0 writes
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")

    # Data: rank 0 builds the cache, the others then read it.
    if not dist.main:
        dist.barrier()
    ds = prepare(cfg.data.name, cfg.data.source, image_size=cfg.data.image_size, cache_dir=cfg.data.cache_dir,
                 progress=dist.main and not cfg.output.quiet)
    if dist.main:
        dist.barrier()
    train_split, val_split, val_name = choose_splits(ds, cfg)
    size = cfg.augment.size or ds.image_size[0]
    check_input_size(cfg.model.name, size)

    # Model (pretrained weights when asked), EMA, optimizer.
    torch.manual_seed(t.seed)
    model = create_model(cfg.model.name, num_classes=ds.num_classes, in_chans=ds.channels, **cfg.model.kwargs)
    if tr.pretrained and ckpt is None:  # a resumed run takes its weights from its own checkpoint
        load_pretrained(model, tr.pretrained, list(ds.class_ids))
    mean, std = normalization(model, ds, tr)
    model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    ema = None
    if cfg.optim.ema > 0:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=cfg.optim.ema, use_warmup=True)
    if tr.mode != "full" or tr.lr_decay != 1.0:
        optimizer = build_optimizer(model, cfg.optim, param_groups_by_depth(
            model, cfg.optim.weight_decay, cfg.optim.decay_norm_and_bias, tr.lr_decay))
    else:
        optimizer = build_optimizer(model, cfg.optim)
    eval_aug = build_augment("none", mean, std, ds.image_size[0], cfg.augment.size, channels_last)
    head_model = None
    if tr.mode == "features":
        # The frozen backbone runs once per image; its pooled features are cached beside the dataset
        # and the epochs train the classifier alone on them, so an epoch costs seconds.
        train_split, val_split, head_model = feature_splits(model, cfg, ds, train_split, val_split, eval_aug,
                                                            device, amp_dtype, dist)
        train_aug = val_aug = None
    else:
        train_aug = build_augment(cfg.augment.policy, mean, std, ds.image_size[0], cfg.augment.size, channels_last)
        val_aug = eval_aug
    train_loader = BatchLoader(train_split, t.batch_size, shuffle=True, seed=t.seed, device=device, rank=dist.rank,
                               world_size=dist.world_size, transform=train_aug, in_memory=cfg.data.in_memory)
    if len(train_loader) == 0:
        raise TinyVisionError(f"train split has {len(train_split)} images, fewer than one batch of {t.batch_size}"
                              + (f" per process ({dist.world_size})" if dist.enabled else ""))
    val_loader = BatchLoader(val_split, t.eval_batch_size, shuffle=False, drop_last=False, seed=t.seed,
                             device=device, rank=dist.rank, world_size=dist.world_size, transform=val_aug)
    monitor_mode = "min" if t.monitor == "loss" else "max"
    schedule = Schedule(optimizer, cfg.schedule, cfg.optim.lr, len(train_loader), t.epochs, monitor_mode)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)

    train_model = head_model if head_model is not None else model
    if t.compile:
        train_model = torch.compile(train_model)
    if dist.enabled:
        train_model = nn.parallel.DistributedDataParallel(train_model, device_ids=[device.index] if device.type == "cuda" else None)

    data_info = {"dataset": ds.name, "num_classes": ds.num_classes, "in_chans": ds.channels, "image_size": size,
                 "class_ids": list(ds.class_ids), "class_names": list(ds.class_names), "mean": list(mean),
                 "std": list(std), "val_split": val_name, "model": cfg.model.name, "model_kwargs": cfg.model.kwargs,
                 "cache": str(ds.path), "cache_size": ds.image_size[0], "channels_last": channels_last,
                 "precision": precision,
                 "eval_batch_size": t.eval_batch_size}
    progress = ckpt["progress"] if ckpt else None
    log = RunLog(run_dir, enabled=dist.main, tensorboard=cfg.output.tensorboard, quiet=cfg.output.quiet,
                 resume_offset=progress["log_offset"] if ckpt else (0 if resume else None),  # no checkpoint: restart the log
                 resume_step=ckpt["step"] if ckpt else 0)
    run = Run(cfg, run_dir, dist, device, amp_dtype, model, train_model, ema, optimizer, schedule, scaler,
              train_loader, val_loader, log, data_info, hooks=hooks)
    if ckpt:
        run.restore(ckpt)
        log.print(f"resumed {run_dir} at epoch {run.epoch + 1}, step {run.step}")
    params = count_params(model)
    if not ckpt:
        log.print(f"run {run_dir}: {cfg.model.name} ({params / 1e6:.2f}M params) on {ds.name} "
                  f"({len(train_split)} train, {len(val_split)} {val_name}), {device}, "
                  f"{precision}"
                  f"{', channels_last' if channels_last else ''}{f', {dist.world_size} processes' if dist.enabled else ''}")

    # Signals: finish the step, write last.pt, then stop.
    def on_signal(signum, frame):
        run.stop_signal = signum

    handlers = {}
    if hasattr(signal, "SIGTERM"):
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                handlers[s] = signal.signal(s, on_signal)
            except ValueError:  # not the main thread: leave signals alone
                pass
    stopped = "completed"
    try:
        while run.epoch < t.epochs:
            t_epoch = time.perf_counter()
            if train_loader.epoch != run.epoch:
                train_loader.set_epoch(run.epoch)
            if tr.mode != "full":
                depth = trainable_depth(run.epoch, tr.unfreeze, tr.mode, len(depth_groups(model)))
                run.trainable = set(set_trainable(model, depth))
            train = train_one_epoch(run, segment_start)
            eval_model = ema.module if ema is not None else model
            if head_model is not None:
                eval_model = HeadOnly(eval_model)
            val = evaluate(eval_model, val_loader, amp_dtype, dist)
            run.epoch += 1
            run.last_val = {"top1": val["top1"], "top5": val["top5"], "loss": val["loss"], "n": val["n"],
                            "epoch": run.epoch}
            metric = val["loss"] if t.monitor == "loss" else val["top1"]
            schedule.epoch_end(metric)
            improved = run.best is None or (metric < run.best if monitor_mode == "min" else metric > run.best)
            if improved:
                run.best, run.best_epoch, run.best_val, run.bad_epochs = metric, run.epoch, dict(run.last_val), 0
            else:
                run.bad_epochs += 1
            seconds = time.perf_counter() - t_epoch
            log.write({"type": "epoch", "step": run.step, "epoch": run.epoch, "train_loss": train["loss"],
                       "train_top1": train["top1"], "val_loss": val["loss"], "val_top1": val["top1"],
                       "val_top5": val["top5"], "lr": schedule.lr, "images_per_s": train["images_per_s"],
                       "seconds": seconds}, "epoch")
            log.end_epoch(f"epoch {run.epoch}/{t.epochs}  train loss {train['loss']:.4f} acc {train['top1']:.4f}  "
                          f"{val_name} loss {val['loss']:.4f} top1 {val['top1']:.4f} top5 {val['top5']:.4f}  "
                          f"{train['images_per_s']:.0f} img/s  {seconds:.1f}s")
            run.save(("last", "best") if improved else ("last",), None, segment_start)
            if hooks.epoch_end is not None and not hooks.epoch_end(run.epoch, dict(run.last_val)):
                stopped = "pruned"
                log.print(f"stopped after epoch {run.epoch} by the caller (pruned)")
                break
            if t.early_stop_patience and run.bad_epochs >= t.early_stop_patience:
                stopped = "early-stopped"
                log.print(f"early stop: no {t.monitor} improvement for {run.bad_epochs} epochs "
                          f"(best at epoch {run.best_epoch})")
                break
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
        log.close()

    summary = {
        "dataset": ds.name, "model": cfg.model.name, "val_split": val_name,
        "best": {"top1": run.best_val.get("top1"), "top5": run.best_val.get("top5"), "loss": run.best_val.get("loss"),
                 "epoch": run.best_epoch},
        "final": {k: run.last_val.get(k) for k in ("top1", "top5", "loss", "n")},
        "epochs": run.epoch, "steps": run.step, "stopped": stopped,
        "wall_time_s": run.elapsed + time.perf_counter() - segment_start,
        "train_seconds": run.train_seconds,
        "images_per_s": run.train_images / max(run.train_seconds, 1e-9),
        "params": params, "monitor": t.monitor, "ema": ema is not None,
        "device": str(device), "precision": precision,
        "world_size": dist.world_size, "run_dir": str(run_dir),
    }
    if dist.main:
        write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
    dist.barrier()
    return summary
