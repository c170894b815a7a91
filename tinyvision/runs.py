"""Reading a run directory: its config, metrics, summary, and its model rebuilt from a checkpoint.

evaluate/, report/ and search/ read runs only through this module and the files themselves,
never through the engine's live objects, so they work on finished runs, runs in progress and
runs copied from another machine alike.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import nn

from tinyvision.errors import TinyVisionError


def _run_dir(run_dir) -> Path:
    p = Path(run_dir)
    if not p.is_dir():
        raise TinyVisionError(f"{p}: no such run dir")
    if not (p / "config.yaml").exists() and not (p / "checkpoints").exists():
        raise TinyVisionError(f"{p}: not a tinyvision run dir (no config.yaml or checkpoints/)")
    return p


def read_config(run_dir) -> dict:
    p = _run_dir(run_dir) / "config.yaml"
    return yaml.safe_load(p.read_text()) if p.exists() else {}


def read_summary(run_dir) -> dict | None:
    """summary.json, or None while the run is still going (or was killed)."""
    p = _run_dir(run_dir) / "summary.json"
    return json.loads(p.read_text()) if p.exists() else None


def read_metrics(run_dir) -> list[dict]:
    """metrics.jsonl as dicts; a half-written last line (a run being written to) is skipped."""
    p = _run_dir(run_dir) / "metrics.jsonl"
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
    d = _run_dir(run_dir) / "checkpoints"
    for name in ((which, "last") if which == "best" else (which,)):
        if (d / f"{name}.pt").exists():
            return d / f"{name}.pt"
    raise TinyVisionError(f"{run_dir}: no {which} checkpoint in {d}")


@dataclass
class LoadedModel:
    model: nn.Module  # in eval mode, on the requested device
    info: dict  # class_ids, class_names, mean, std, image_size (model input), in_chans, dataset, ...
    checkpoint: Path
    epoch: int
    step: int
    weights: str  # "ema" or "model": which weights were loaded


def load_model(run_dir, which: str = "best", device="cpu", ema: bool = True) -> LoadedModel:
    """Rebuild the run's model from a checkpoint (EMA weights when the run kept them, as its val used)."""
    from tinyvision.models import create_model

    path = checkpoint_path(run_dir, which)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise TinyVisionError(f"{path}: not a readable tinyvision checkpoint ({type(e).__name__}: {e})") from None
    if "data" not in ckpt or "model" not in ckpt:
        raise TinyVisionError(f"{path}: not a tinyvision checkpoint (no model or data entries)")
    info = dict(ckpt["data"])
    model = create_model(info["model"], num_classes=info["num_classes"], in_chans=info["in_chans"],
                         **info.get("model_kwargs", {}))
    weights = "ema" if ema and "ema" in ckpt else "model"
    model.load_state_dict(ckpt[weights])
    model.to(device).eval()
    return LoadedModel(model, info, path, int(ckpt["epoch"]), int(ckpt["step"]), weights)
