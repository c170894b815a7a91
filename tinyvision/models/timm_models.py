"""Any timm architecture by name: `model.name: inception_resnet_v2`, `mobilenetv1_100`, or
`timm/<name>` where tinyvision registers a model of the same name (our `vgg16` and `resnet18`
are torchvision's with a small-image stem; `timm/vgg16` is timm's).

Entries are made on first use from timm's own catalogue: the builder calls timm.create_model
without weights (weights come from `--pretrained`), the normalization is timm's pretrained
config's, and `--pretrained true` asks timm for its published weights (its download cache,
the Hugging Face hub's, when online).
"""
from __future__ import annotations

from tinyvision.models.registry import ModelEntry

PREFIX = "timm/"


def timm_entry(name: str) -> ModelEntry | None:
    """An entry for a timm architecture (`timm/<name>` or a bare timm name), or None."""
    import timm

    arch = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if not timm.is_model(arch):
        return None
    cfg = timm.models.get_pretrained_cfg(arch)
    norm = {"mean": tuple(cfg.mean), "std": tuple(cfg.std)} if cfg is not None and cfg.mean else None

    def build(num_classes=1000, in_chans=3, **kw):
        return timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kw)

    return ModelEntry(name, build, None, 32, "timm", None, norm, None, arch)
