"""Run directories: the run record, the files in a run dir, and the model rebuilt from a checkpoint.

`fit` writes a RunRecord once (RUN_DIR/run.json, and inside every checkpoint); evaluate/,
report/ and search/ read runs only through this module and the files themselves, never through
the engine's live objects, so they work on finished runs, runs in progress and runs copied from
another machine alike.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path

import yaml
from torch import nn

from tinyvision.atomic import write_text
from tinyvision.checkpoint import load_checkpoint
from tinyvision.errors import TinyVisionError
from tinyvision.tta import resolve

RECORD_FILE = "run.json"


@dataclass
class RunRecord:
    """What a run is, as everything that reads it afterwards needs it: which model on which data,
    how inputs are prepared, how it was validated, and how it computes."""

    dataset: str  # catalogue name (tinyvision.data.DATASETS)
    model: str  # registry name
    num_classes: int
    in_chans: int
    class_ids: list  # stable class identities (wnids, folder names); eval matches other data by these
    class_names: list
    mean: list  # input normalization, per channel, on a [0, 1] scale
    std: list
    image_size: int  # model input side in pixels (after any resize on the device)
    cache_size: int  # side of the cached images (their height), before that resize
    model_kwargs: dict = field(default_factory=dict)
    cache_shape: list = field(default_factory=list)  # [height, width] of the cached images (segmentation caches need not be square)
    head: list = field(default_factory=list)  # a dense head's hidden widths (model.head), [] = the model's own
    head_dropout: float = 0.5
    params: int = 0  # trainable parameters
    macs: int = 0  # multiply-accumulates per image at image_size
    precision: str = "fp32"  # autocast dtype name (tinyvision.device.precision_name)
    channels_last: bool = False
    eval_batch_size: int = 500
    val_split: str = "val"  # the split validated on: the dataset's val/test, or "holdout"
    holdout: float = 0.0  # fraction of train held out for val (0: none)
    split_seed: int = 0  # seed of the holdout and of any limit_train subset
    cache: str = ""  # the cache folder the run read
    source: str | None = None  # the dataset source it was built from (to rebuild the cache elsewhere)
    cache_dir: str | None = None
    prepare_size: int | None = None  # data.image_size the cache was built with (None: native)
    pretrained: str = ""  # where the starting weights came from ("" = random init)
    pretrained_head: str = ""  # loaded | imagenet-rows | new ("" without pretrained weights)
    task: str = "classification"  # or segmentation: the model maps an image to per-pixel class logits
    ignore_index: int | None = None  # segmentation: the mask value of pixels without a class
    tta: str = ""  # test-time augmentation of the run's final evaluation ("flip", "flip-shift", or "" for none)

    def to_dict(self) -> dict:
        return asdict(self)

    def resolve_tta(self, tta: str | None) -> str | None:
        """An eval's TTA: "run" (the default) evaluates as the run's final evaluation did."""
        return resolve(self.tta if tta == "run" else tta)

    @classmethod
    def from_dict(cls, d: dict, where: str = "run record") -> "RunRecord":
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in known})
        except TypeError as e:
            raise TinyVisionError(f"{where}: not a tinyvision run record ({e})") from None


def run_dir_path(run_dir) -> Path:
    p = Path(run_dir)
    if not p.is_dir():
        raise TinyVisionError(f"{p}: no such run dir")
    if not is_run_dir(p):
        raise TinyVisionError(f"{p}: not a tinyvision run dir (no config.yaml or checkpoints/)")
    return p


def is_run_dir(path) -> bool:
    """Whether `path` already holds a run (its config or checkpoints)."""
    p = Path(path)
    return (p / "config.yaml").exists() or (p / "checkpoints").exists()


def default_run_dir(dataset: str, model: str) -> Path:
    return Path("runs") / f"{dataset}-{model}-{datetime.now():%Y%m%d-%H%M%S}"


def claim_run_dir(run_dir, resume: bool, if_exists: str) -> bool:
    """The run-dir policy: never overwrite a run silently. Returns whether to resume.

    A dir holding a run is resumed when asked (`resume`, or if_exists == "resume") and refused
    otherwise; resuming a dir that holds no run is an error."""
    run_dir = Path(run_dir)
    if is_run_dir(run_dir) and not resume:
        if if_exists != "resume":
            raise TinyVisionError(f"{run_dir} already holds a run; continue it with `tinyvision train --resume {run_dir}` "
                                  "(or output.if_exists=resume), or pick another --out")
        resume = True
    if resume and not is_run_dir(run_dir):
        raise TinyVisionError(f"{run_dir}: no run to resume (no config.yaml or checkpoints/)")
    return resume


def write_record(run_dir, record: RunRecord) -> None:
    write_text(Path(run_dir) / RECORD_FILE, json.dumps(record.to_dict(), indent=1))


def read_record(run_dir) -> RunRecord | None:
    """RUN_DIR/run.json, or None for a run that has not got as far as writing it."""
    p = run_dir_path(run_dir) / RECORD_FILE
    return RunRecord.from_dict(json.loads(p.read_text()), str(p)) if p.exists() else None


def read_config(run_dir) -> dict:
    p = run_dir_path(run_dir) / "config.yaml"
    return yaml.safe_load(p.read_text()) if p.exists() else {}


def read_summary(run_dir) -> dict | None:
    """summary.json, or None while the run is still going (or was killed)."""
    p = run_dir_path(run_dir) / "summary.json"
    return json.loads(p.read_text()) if p.exists() else None


def read_metrics(run_dir) -> list[dict]:
    """metrics.jsonl as dicts; a half-written last line (a run being written to) is skipped."""
    p = run_dir_path(run_dir) / "metrics.jsonl"
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def checkpoint_path(run_dir, which: str = "best") -> Path:
    """best | last | a path. `best` falls back to `last` for a run that has not finished an epoch."""
    if which not in ("best", "last"):
        p = Path(which)
        if not p.exists():
            raise TinyVisionError(f"{p}: no such checkpoint")
        return p
    d = run_dir_path(run_dir) / "checkpoints"
    for name in ((which, "last") if which == "best" else (which,)):
        if (d / f"{name}.pt").exists():
            return d / f"{name}.pt"
    raise TinyVisionError(f"{run_dir}: no {which} checkpoint in {d}")


@dataclass
class LoadedModel:
    model: nn.Module  # in eval mode, on the requested device
    record: RunRecord
    checkpoint: Path
    epoch: int
    step: int
    weights: str  # "ema", "model" or "pretrained": which weights were loaded


def load_model(run_dir, which: str = "best", device="cpu", ema: bool = True) -> LoadedModel:
    """Rebuild the run's model from a checkpoint (EMA weights when the run kept them, as its val used)."""
    from tinyvision.models import create_model

    path = checkpoint_path(run_dir, which)
    ckpt = load_checkpoint(path)
    saved = ckpt.get("record", ckpt.get("data"))  # "data": what checkpoints of tinyvision 0.1 called it
    if saved is None or "model" not in ckpt:
        raise TinyVisionError(f"{path}: not a tinyvision checkpoint (no model or record entries)")
    record = RunRecord.from_dict(saved, str(path))
    from tinyvision.models.heads import dense_head

    model = create_model(record.model, num_classes=record.num_classes, in_chans=record.in_chans, **record.model_kwargs)
    dense_head(model, record.head, record.head_dropout)
    weights = "ema" if ema and "ema" in ckpt else "model"
    model.load_state_dict(ckpt[weights])
    model.to(device).eval()
    return LoadedModel(model, record, path, int(ckpt["epoch"]), int(ckpt["step"]), weights)
