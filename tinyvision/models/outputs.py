"""What a model's forward returns: logits, or (logits, *auxiliary logits) for nets with aux heads
(GoogLeNet in training). Everything that calls a model unwraps it here."""
from __future__ import annotations

import torch


def split_outputs(out) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(main output, auxiliary outputs): a tuple or list is (main, *aux); a tensor has no aux."""
    if isinstance(out, (tuple, list)):
        return out[0], list(out[1:])
    return out, []


def main_output(out) -> torch.Tensor:
    return split_outputs(out)[0]
