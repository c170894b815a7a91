"""The model registry: name -> builder(num_classes, in_chans, **kwargs) -> nn.Module.

As torchvision's `_api.py`: a dict, a decorator that refuses duplicates, a getter whose error
lists the closest names. Each entry also records what the rest of tinyvision needs to know about
the architecture without building it: the input sizes it allows, its channel counts, and for
pretrained weights the normalization they expect and where `--pretrained true` finds them.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from torch import nn

from tinyvision.errors import TinyVisionError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    input_sizes: tuple[int, ...] | None  # None: any size down to `min_size`
    min_size: int = 28
    family: str = ""
    in_chans: tuple[int, ...] | None = None  # None: any
    normalization: dict | None = None  # {'mean', 'std'} that pretrained weights for it expect
    torchvision_arch: str | None = None  # `--pretrained true`: torchvision's weights of this name
    timm_arch: str | None = None  # `--pretrained true`: timm's weights of this name
    task: str = "classification"  # or segmentation: (N, C, H, W) -> (N, classes, H, W)


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, *, input_sizes=None, min_size: int = 28, family: str = "", in_chans=None,
                   normalization: dict | None = None, torchvision_arch: str | None = None, timm_arch: str | None = None,
                   task: str = "classification"):
    def deco(fn):
        if name in _MODELS:
            raise TinyVisionError(f"model {name!r} is already registered")
        _MODELS[name] = ModelEntry(name, fn, tuple(input_sizes) if input_sizes else None, min_size, family,
                                   tuple(in_chans) if in_chans else None, normalization, torchvision_arch, timm_arch,
                                   task)
        return fn

    return deco


def get_entry(name: str) -> ModelEntry:
    """The registered model, else timm's architecture of that name (models/timm_models.py)."""
    if name not in _MODELS:
        from tinyvision.models.timm_models import timm_entry

        entry = timm_entry(name)
        if entry is not None:
            return entry
        close = difflib.get_close_matches(name, list(_MODELS), n=5, cutoff=0.4)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise TinyVisionError(f"unknown model {name!r}{hint}. `tinyvision models list` shows all {len(_MODELS)}"
                              " (and any timm architecture name works)")
    return _MODELS[name]


def create_model(name: str, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> nn.Module:
    entry = get_entry(name)
    if entry.in_chans and in_chans not in entry.in_chans:
        raise TinyVisionError(f"model {name!r} takes in_chans in {entry.in_chans}, not {in_chans}")
    return entry.builder(num_classes=num_classes, in_chans=in_chans, **kwargs)


def list_models(family: str | None = None) -> list[str]:
    return sorted(n for n, e in _MODELS.items() if family is None or e.family == family)


def check_input(name: str, expected: int, x) -> None:
    """For models with a fixed-size FC: a clear error naming the size they take."""
    h, w = x.shape[-2:]
    if h != expected or w != expected:
        raise TinyVisionError(f"{name} takes {expected}x{expected} inputs (its FC layer is sized for them), "
                              f"got {h}x{w}; prepare the data with --image-size {expected}")
