"""Search spaces: YAML files naming config keys and the values each may take.

    fixed:                         # config for every trial (any config key)
      train.epochs: 4
    params:                        # sampled per trial, in this order
      model.name: {choices: [quicknet, mobilenetv2]}
      model.kwargs.widths: {choices: [[16, 32], [32, 64, 128]], when: {model.name: quicknet}}
      optim.lr: {low: 0.001, high: 0.3, log: true}
      train.batch_size: {choices: [64, 128]}
      optim.label_smoothing: {low: 0.0, high: 0.2}
      model.kwargs.depth: {low: 1, high: 4, type: int}

A key is a config key or `model.kwargs.<argument>`; `when` samples a parameter only if earlier
ones took the given values (AutoKeras-style conditional blocks). Every mistake is an error
naming its key: unknown keys, empty choices, inverted or non-positive log ranges.
"""
from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tinyvision.engine.config import Config, all_keys
from tinyvision.errors import TinyVisionError

BUILTIN_SPACES = Path(__file__).resolve().parent / "spaces"


@dataclass
class Param:
    key: str
    choices: list | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    when: dict = field(default_factory=dict)

    def sample(self, trial):
        name = self.key
        if self.choices is not None:
            # Optuna stores choices that are plain scalars; lists are sampled by index
            if all(isinstance(c, (int, float, str, bool)) or c is None for c in self.choices):
                return trial.suggest_categorical(name, self.choices)
            i = trial.suggest_categorical(name, list(range(len(self.choices))))
            return copy.deepcopy(self.choices[i])
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, float(self.low), float(self.high), log=self.log)

    def value_of(self, stored):
        """The config value of a stored Optuna parameter (an index for list-valued choices)."""
        if self.choices is not None and not all(isinstance(c, (int, float, str, bool)) or c is None for c in self.choices):
            return copy.deepcopy(self.choices[stored])
        return stored


@dataclass
class Space:
    name: str
    fixed: dict
    params: list[Param]

    def sample(self, trial) -> dict:
        """Config overrides for one trial: fixed values, then the sampled parameters."""
        values = dict(self.fixed)
        for p in self.params:
            if all(values.get(k) == v for k, v in p.when.items()):
                values[p.key] = p.sample(trial)
        return values

    def overrides_from_params(self, stored: dict) -> dict:
        values = dict(self.fixed)
        by_key = {p.key: p for p in self.params}
        for k, v in stored.items():
            values[k] = by_key[k].value_of(v) if k in by_key else v
        return values


def to_config(overrides: dict, base: Config | None = None) -> Config:
    """Apply overrides; `model.kwargs.<arg>` keys go into the model's builder arguments."""
    from tinyvision.engine.config import load_config

    plain, kwargs = {}, {}
    for k, v in overrides.items():
        if k.startswith("model.kwargs."):
            kwargs[k[len("model.kwargs."):]] = v
        else:
            plain[k] = v
    cfg = load_config(None, plain, base)
    cfg.model.kwargs = {**cfg.model.kwargs, **kwargs}
    return cfg


def _check_key(key: str, where: str) -> None:
    if key.startswith("model.kwargs.") and len(key) > len("model.kwargs."):
        return
    if key not in all_keys():
        close = difflib.get_close_matches(key, all_keys(), n=3, cutoff=0.5)
        raise TinyVisionError(f"{where}: unknown key {key!r}" + (f"; did you mean {', '.join(close)}?" if close else
                                                                  " (a config key or model.kwargs.<argument>)"))


def _param(key: str, spec, where: str) -> Param:
    w = f"{where}: {key}"
    if not isinstance(spec, dict):
        raise TinyVisionError(f"{w}: expected {{choices: [...]}} or {{low: .., high: ..}}, got {spec!r}")
    unknown = set(spec) - {"choices", "low", "high", "log", "type", "when"}
    if unknown:
        raise TinyVisionError(f"{w}: unknown field(s) {', '.join(sorted(unknown))}")
    when = spec.get("when") or {}
    if not isinstance(when, dict):
        raise TinyVisionError(f"{w}: `when` must map earlier keys to values")
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise TinyVisionError(f"{w}: choices must be a non-empty list")
        return Param(key, choices=choices, when=when)
    if "low" not in spec or "high" not in spec:
        raise TinyVisionError(f"{w}: a range needs both low and high")
    low, high = spec["low"], spec["high"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise TinyVisionError(f"{w}: low and high must be numbers")
    if low >= high:
        raise TinyVisionError(f"{w}: inverted range (low {low} >= high {high})")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise TinyVisionError(f"{w}: a log range needs low > 0, got {low}")
    kind = spec.get("type", "int" if isinstance(low, int) and isinstance(high, int) and not log else "float")
    if kind not in ("int", "float"):
        raise TinyVisionError(f"{w}: type must be int or float")
    return Param(key, low=low, high=high, log=log, integer=kind == "int", when=when)


def parse_space(tree: dict, where: str = "space") -> Space:
    if not isinstance(tree, dict) or "params" not in tree:
        raise TinyVisionError(f"{where}: a space needs a `params` mapping (and optionally `fixed`)")
    unknown = set(tree) - {"params", "fixed", "description"}
    if unknown:
        raise TinyVisionError(f"{where}: unknown section(s) {', '.join(sorted(unknown))}; use params and fixed")
    fixed = tree.get("fixed") or {}
    params = tree["params"] or {}
    if not isinstance(params, dict) or not params:
        raise TinyVisionError(f"{where}: params must be a non-empty mapping")
    for k in fixed:
        _check_key(k, where)
    out = []
    for k, spec in params.items():
        _check_key(k, where)
        p = _param(k, spec, where)
        for cond in p.when:
            if cond not in fixed and cond not in [q.key for q in out]:
                raise TinyVisionError(f"{where}: {k}: `when` names {cond!r}, which is not an earlier parameter")
        out.append(p)
    # the fixed values must be valid config values
    try:
        to_config({k: v for k, v in fixed.items()})
    except TinyVisionError as e:
        raise TinyVisionError(f"{where}: fixed: {e}") from None
    _check_models(out, fixed, where)
    return Space(Path(where).stem, dict(fixed), out)


def _check_models(params: list[Param], fixed: dict, where: str) -> None:
    from tinyvision.models import list_models

    names = set(list_models())
    for p in params:
        if p.key == "model.name":
            bad = [c for c in p.choices or [] if c not in names]
            if bad:
                close = difflib.get_close_matches(str(bad[0]), names, n=3)
                raise TinyVisionError(f"{where}: model.name: unknown model {bad[0]!r}"
                                      + (f"; closest: {', '.join(close)}" if close else ""))
    if "model.name" in fixed and fixed["model.name"] not in names:
        raise TinyVisionError(f"{where}: fixed model.name: unknown model {fixed['model.name']!r}")


def read_spec(name: str, builtin: Path, what: str) -> tuple[dict, Path]:
    """(the YAML tree, its path) of a file, or of a built-in spec `builtin/<name>.yaml`."""
    p = Path(name)
    if not p.exists():
        p = builtin / (name if name.endswith(".yaml") else f"{name}.yaml")
    if not p.exists():
        names = sorted(q.stem for q in builtin.glob("*.yaml"))
        raise TinyVisionError(f"{what} {name}: no such file, nor a built-in {what} ({', '.join(names)})")
    try:
        return yaml.safe_load(p.read_text()), p
    except yaml.YAMLError as e:
        raise TinyVisionError(f"{p}: not valid YAML: {e}") from None


def load_space(name: str) -> Space:
    """A YAML file, or a built-in space: small-cnn, resnet, autokeras-like."""
    tree, p = read_spec(name, BUILTIN_SPACES, "search space")
    return parse_space(tree, str(p))
