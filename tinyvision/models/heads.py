"""Replacing a network's classifier with a dense head: hidden Linear -> ReLU -> Dropout layers,
then the class logits (report 004 put a 1024-unit Dense layer on its ImageNet backbones)."""
from __future__ import annotations

from torch import nn

from tinyvision.errors import TinyVisionError
from tinyvision.models.pretrained import DenseHead, classifier_name


def dense_head(model: nn.Module, hidden: list[int], dropout: float = 0.5) -> nn.Module:
    """Swap the classifier (timm's declared one, else the last Linear) for a fresh MLP with the
    same input and output sizes; returns the model. `hidden` empty: the model as it is."""
    if not hidden:
        return model
    name = classifier_name(model)
    old = model.get_submodule(name)
    if not isinstance(old, nn.Linear):
        raise TinyVisionError(f"{type(model).__name__}.{name} is a {type(old).__name__}, not a Linear layer: "
                              "no dense head for it")
    layers, width = [], old.in_features
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        width = int(h)
    layers.append(nn.Linear(width, old.out_features))
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, DenseHead(*layers))
    return model
