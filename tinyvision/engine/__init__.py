"""Training engine: config, optimizers and schedules, the train/eval loop, checkpoints, logging, DDP.

    from tinyvision.engine import fit, load_config

The heavy parts (torch) load on first use, so that `tinyvision.engine.config` (what the CLI
needs to build its parser) imports in milliseconds.
"""
import importlib

_EXPORTS = {"Config": "config", "load_config": "config", "FitHooks": "train", "fit": "train", "Interrupted": "interrupt"}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"tinyvision.engine.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'tinyvision.engine' has no attribute {name!r}")
