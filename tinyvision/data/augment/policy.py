"""Policies: a preset name, an `op:key=value,op` string, or a list of dicts -> a list of ops.

    parse_policy("flip,crop:padding=4,rotate:degrees=15")
    parse_policy([{"name": "crop", "padding": 4}, {"name": "flip"}])
"""
from __future__ import annotations

from tinyvision.data.augment.ops import OPS
from tinyvision.errors import TinyVisionError

# Named policies. Padding and sizes scale with the image: '{pad}' is size/8, as 4 px at 32 px.
PRESETS = {
    "none": "",
    "flip": "flip",
    "standard": "crop:padding={pad},flip",
    "seed000-switchoff": "switch-off:p=0.05:per=epoch:fill=mean",  # one mask per epoch, on the normalized input
    "seed000-rotflip": "rotate-choice,flip",
    "seed001": "flip,translate:fraction=0.1,rotate:degrees=15,contrast:strength=0.3",
    "seed002": "rrc,flip,rotate:degrees=18",
    # report 003: "random rotation, color jittering, and flipping" (magnitudes not given: assumed)
    "seed003": "rotate:degrees=15,brightness:strength=0.2,contrast:strength=0.2,saturation:strength=0.2,flip",
    "trivialaugment": "crop:padding={pad},flip,trivialaugment",
    "randaugment": "crop:padding={pad},flip,randaugment",
    "strong": "crop:padding={pad},flip,trivialaugment,erase:p=0.25",
    "benchmark": "flip,crop:padding={pad},rotate:degrees=15",
}


def _parse_value(s: str):
    if "~" in s:
        return tuple(_parse_value(v) for v in s.split("~"))
    for cast in (int, float):
        try:
            return cast(s)
        except ValueError:
            pass
    return s


def _items(text: str) -> list[dict]:
    items = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, *kvs = part.split(":")
        kw = {}
        for kv in kvs:
            if "=" not in kv:
                raise TinyVisionError(f"augmentation {part!r}: expected key=value, got {kv!r}")
            k, v = kv.split("=", 1)
            kw[k.strip()] = _parse_value(v.strip())
        items.append({"name": name.strip(), **kw})
    return items


def parse_policy(policy, image_size: int = 32) -> list:
    """A preset name, a 'op:key=value,op' string, or a list of {'name': op, **kwargs} dicts -> ops."""
    if isinstance(policy, str):
        items = _items(PRESETS.get(policy, policy).format(pad=max(1, image_size // 8)))
    else:
        items = list(policy or [])
    ops = []
    for item in items:
        item = dict(item)
        name = item.pop("name", None)
        if name not in OPS:
            raise TinyVisionError(
                f"unknown augmentation {name!r}; ops: {', '.join(OPS)}; presets: {', '.join(PRESETS)}")
        try:
            ops.append(OPS[name](**item))
        except TypeError as e:
            raise TinyVisionError(f"augmentation {name!r}: {e}") from e
    return ops
