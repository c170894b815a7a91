"""Weight files in other projects' key layouts, renamed onto the model's own keys.

`remap(state, model)` recognizes the layout by the file's keys and the model's, and returns the
state in the model's names (tensors reshaped where a layer differs only in form), plus the
layout's name. Unknown layouts pass through unchanged, so strict loading then lists what does
not fit. Each mapping is one-to-one: nothing is dropped or invented.

- lukemelas / RangiLyu EfficientNet (`_blocks.N._depthwise_conv`) -> timm's tf_efficientnet_liteN
- torchvision VGG (`classifier.0/3/6`) -> timm's VGG (`pre_logits.fc1/fc2` as convs, `head.fc`)
- torchvision VGG -> tinyvision's VGG with the ImageNet head (`classifier.1/4/7`, after a Flatten)
- torchvision VGG16 -> FCN-VGG (`fc6`/`fc7` as convolutions, the paper's conversion)
- torchvision MobileNetV2 (`features.N...`) -> timm's mobilenetv2_* (same tensors, same order)
- torchvision and timm ResNets already share their key names.
"""
from __future__ import annotations

import re

from torch import nn

from tinyvision.errors import TinyVisionError

# lukemelas / RangiLyu EfficientNet key names -> timm's EfficientNet
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}  # no expansion
_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
       "_project_conv": "conv_pwl", "_bn2": "bn3"}


def is_lukemelas(state: dict) -> bool:
    return "_conv_stem.weight" in state


def remap_lukemelas(state: dict, model: nn.Module) -> dict:
    """Rename `_blocks.i.<part>` to timm's `blocks.<stage>.<j>.<part>` from the model's stage lengths."""
    if not hasattr(model, "blocks"):
        raise TinyVisionError(f"EfficientNet weights (lukemelas keys) do not fit {type(model).__name__}")
    stages = [len(s) for s in model.blocks]
    where = [(s, j) for s, n in enumerate(stages) for j in range(n)]
    expanded = {int(m.group(1)) for k in state if (m := re.match(r"_blocks\.(\d+)\._expand_conv", k))}
    out = {}
    for k, v in state.items():
        m = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)", k)
        if m:
            i, part, rest = int(m.group(1)), m.group(2), m.group(3)
            if i >= len(where):
                raise TinyVisionError(f"weights have block {i}, the model only {len(where)} blocks")
            table = _IR if i in expanded else _DS
            if part not in table:
                raise TinyVisionError(f"weights key {k!r}: unknown block part {part!r}")
            s, j = where[i]
            out[f"blocks.{s}.{j}.{table[part]}.{rest}"] = v
        else:
            head, _, rest = k.partition(".")
            if head not in _TOP:
                raise TinyVisionError(f"weights key {k!r}: no counterpart in the model")
            out[f"{_TOP[head]}.{rest}"] = v
    return out


def _tv_vgg_to_timm(state: dict, own: dict) -> dict:
    out = {}
    for k, v in state.items():
        m = re.match(r"classifier\.(\d+)\.(weight|bias)$", k)
        if not m:
            out[k] = v
            continue
        i, kind = int(m.group(1)), m.group(2)
        target = {0: "pre_logits.fc1", 3: "pre_logits.fc2", 6: "head.fc"}.get(i)
        if target is None:
            raise TinyVisionError(f"weights key {k!r}: not a layer of torchvision's VGG classifier")
        key = f"{target}.{kind}"
        out[key] = v.reshape(own[key].shape) if kind == "weight" and key in own else v  # Linear -> conv
    return out


def _tv_vgg_to_fcn(state: dict, own: dict) -> dict:
    """torchvision's VGG16 onto FCN-VGG: features as they are, fc6/fc7 from the classifier's first two
    Linear layers reshaped into 7x7 and 1x1 convolutions (as the FCN paper converted them); the
    ImageNet classifier is dropped and the score layers keep their own (new) weights."""
    out = {k: v for k, v in state.items() if k.startswith("features.")}
    for src, dst in (("classifier.0", "fc6"), ("classifier.3", "fc7")):
        out[f"{dst}.weight"] = state[f"{src}.weight"].reshape(own[f"{dst}.weight"].shape)
        out[f"{dst}.bias"] = state[f"{src}.bias"]
    out.update({k: v for k, v in own.items() if k.startswith("score_")})
    return out


def _tv_vgg_to_ours(state: dict, own: dict) -> dict:
    shift = {0: 1, 3: 4, 6: 7}  # our classifier starts with a Flatten
    out = {}
    for k, v in state.items():
        m = re.match(r"classifier\.(\d+)\.(.+)$", k)
        out[f"classifier.{shift.get(int(m.group(1)), -1)}.{m.group(2)}" if m else k] = v
    return out


def _by_position(state: dict, own: dict, order: list[str]) -> dict:
    """Same tensors in the same order under other names: the file's keys taken in `order` (the
    source architecture's own registration order; files may keep another, as safetensors sorts
    names), paired one by one with the model's, each pair checked for shape."""
    if set(state) != set(order):
        odd = sorted(set(state) ^ set(order))
        raise TinyVisionError(f"weights keys differ from the expected layout's (e.g. {', '.join(odd[:3])})")
    if len(state) != len(own):
        raise TinyVisionError(f"weights have {len(state)} tensors, the model {len(own)}: not the same network")
    out = {}
    for (k, v), (ok, ov) in zip(((k, state[k]) for k in order), own.items()):
        if tuple(v.shape) != tuple(ov.shape):
            raise TinyVisionError(f"weights key {k!r} {tuple(v.shape)} does not fit the model's {ok!r} {tuple(ov.shape)}")
        out[ok] = v
    return out


def _tv_mobilenetv2_to_timm(state: dict, own: dict) -> dict:
    import torchvision

    n = state["classifier.1.weight"].shape[0] if "classifier.1.weight" in state else 1000
    width = state["features.0.0.weight"].shape[0] / 32  # the stem's 32 channels at width 1.0
    order = list(torchvision.models.mobilenet_v2(num_classes=n, width_mult=width).state_dict())
    return _by_position(state, own, order)


# (layout name, recognizes (state, the model's own state), remap (state, model, own state))
LAYOUTS = [
    ("lukemelas-efficientnet", lambda s, o: "_conv_stem.weight" in s, lambda s, m, o: remap_lukemelas(s, m)),
    ("torchvision-vgg -> fcn", lambda s, o: "classifier.0.weight" in s and "fc6.weight" in o,
     lambda s, m, o: _tv_vgg_to_fcn(s, o)),
    ("torchvision-vgg -> timm", lambda s, o: "classifier.0.weight" in s and "pre_logits.fc1.weight" in o,
     lambda s, m, o: _tv_vgg_to_timm(s, o)),
    ("torchvision-vgg -> tinyvision", lambda s, o: "classifier.0.weight" in s and "classifier.1.weight" in o
     and "classifier.0.weight" not in o, lambda s, m, o: _tv_vgg_to_ours(s, o)),
    ("torchvision-mobilenetv2 -> timm", lambda s, o: "features.0.0.weight" in s and "conv_stem.weight" in o,
     lambda s, m, o: _tv_mobilenetv2_to_timm(s, o)),
]


def remap(state: dict, model: nn.Module) -> tuple[dict, str]:
    """(state in the model's key names, the layout recognized: 'native' when none was needed)."""
    own = model.state_dict()
    if set(state) == set(own):
        return state, "native"
    for name, recognizes, fn in LAYOUTS:
        if recognizes(state, own):
            return fn(state, model, own), name
    return state, "native"
