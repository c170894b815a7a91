"""Model zoo: the seed reports' networks and standard families sized for small images.

    from tinyvision.models import create_model, list_models
    model = create_model("seed002-net1", num_classes=200, in_chans=3)
"""
from tinyvision.models import (efficientnet_lite, fcn, googlenet, mobilenetv2, quicknet, reproductions, resnet,  # noqa: F401
                               vgg)
from tinyvision.models.registry import create_model, get_entry, list_models, register_model
from tinyvision.models.summary import summarize

__all__ = ["create_model", "get_entry", "list_models", "register_model", "summarize"]
