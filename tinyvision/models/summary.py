"""Parameter and multiply-accumulate counts, and a layer summary, by one forward pass with hooks."""
from __future__ import annotations

import torch
from torch import nn

from tinyvision.models.outputs import main_output


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def summarize(model: nn.Module, input_size: int, in_chans: int) -> dict:
    """{'params', 'macs', 'layers': [{'name', 'type', 'output', 'params', 'macs'}]} for one image."""
    rows, hooks = [], []

    def hook(mod, inp, out):
        out_t = main_output(out)
        if not isinstance(out_t, torch.Tensor):
            return
        macs = 0
        if isinstance(mod, nn.Conv2d):
            macs = out_t.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Linear):
            macs = out_t.numel() * mod.in_features
        rows.append({"name": names[mod], "type": type(mod).__name__, "output": list(out_t.shape[1:]),
                     "params": sum(p.numel() for p in mod.parameters(recurse=False)), "macs": int(macs)})

    names = {m: n for n, m in model.named_modules()}
    for m in model.modules():
        if not list(m.children()):
            hooks.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, in_chans, input_size, input_size))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {"params": count_params(model), "macs": sum(r["macs"] for r in rows), "layers": rows}
