"""Training engine: config, optimizers and schedules, the train/eval loop, checkpoints, logging, DDP."""
from tinyvision.engine.config import Config, load_config
from tinyvision.engine.fit import FitHooks, Interrupted, fit

__all__ = ["Config", "FitHooks", "Interrupted", "fit", "load_config"]
