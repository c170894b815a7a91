"""`tinyvision export`: a run's model as ONNX or TorchScript, with a dynamic batch dimension.

The exported graph takes normalized float NCHW input at the model's input size (the metadata
written beside it says the mean, std, size and class names). The ONNX file is checked with
onnxruntime against eager PyTorch on a real batch before it is kept.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from tinyvision.atomic import replacing, write_text
from tinyvision.errors import TinyVisionError
from tinyvision.models.outputs import main_output
from tinyvision.runs import RunRecord, load_model

ONNX_TOLERANCE = 1e-4  # max abs difference of logits, fp32


class _Logits(torch.nn.Module):
    """Main logits only (GoogLeNet's aux heads exist only in training anyway)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return main_output(self.model(x))


def sample_batch(record: RunRecord, n: int = 8, batch: np.ndarray | None = None) -> torch.Tensor:
    """A real batch when given (uint8 NHWC at the model's input size), else seeded noise; normalized."""
    size, c = record.image_size, record.in_chans
    if batch is None:
        batch = np.random.default_rng(0).integers(0, 256, (n, size, size, c), dtype=np.uint8)
    x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(record.mean).view(1, -1, 1, 1)
    std = torch.tensor(record.std).view(1, -1, 1, 1)
    return (x - mean) / std


def export_run(run_dir, fmt: str, out, checkpoint: str = "best", batch: np.ndarray | None = None) -> dict:
    """Write the model to `out`; returns {'file', 'format', 'max_abs_diff' (onnx), ...}."""
    if fmt not in ("onnx", "torchscript"):
        raise TinyVisionError(f"export format {fmt!r}: choose onnx or torchscript")
    lm = load_model(run_dir, checkpoint, "cpu")
    model = _Logits(lm.model).eval()
    r = lm.record
    x = sample_batch(r, batch=batch)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"file": str(out), "format": fmt, "input": [None, r.in_chans, r.image_size, r.image_size]}
    with torch.no_grad():
        expected = model(x).numpy()
    with replacing(out) as tmp:  # kept only once it has been checked
        if fmt == "onnx":
            # The TorchScript-based exporter (dynamo=False): it needs only the onnx package, while the
            # torch.export-based default also needs onnxscript; both give the same graph for these nets.
            torch.onnx.export(model, (x,), str(tmp), input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False,
                              opset_version=17)
            diff = onnx_max_abs_diff(tmp, x.numpy(), expected)
            if diff > ONNX_TOLERANCE:
                raise TinyVisionError(f"ONNX export of {lm.checkpoint} differs from PyTorch by {diff:.2e} "
                                      f"(> {ONNX_TOLERANCE}); not written")
        else:
            scripted = torch.jit.trace(model, x)
            diff = float(np.abs(scripted(x).detach().numpy() - expected).max())
            scripted.save(str(tmp))
        result["max_abs_diff"] = diff
    meta = {k: getattr(r, k) for k in ("class_ids", "class_names", "mean", "std", "image_size", "in_chans", "model")}
    meta["input"] = "float32 NCHW, (pixels / 255 - mean) / std"
    write_text(out.with_name(out.name + ".json"), json.dumps(meta, indent=2))
    result["metadata"] = str(out.with_name(out.name + ".json"))
    return result


def onnx_max_abs_diff(path, x: np.ndarray, expected: np.ndarray) -> float:
    """Run the ONNX file with onnxruntime (and onnx's checker) and compare with `expected`."""
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(onnx.load(str(path)))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]
    return float(np.abs(got - expected).max())
