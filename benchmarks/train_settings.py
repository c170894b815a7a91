"""Training-step throughput per precision, memory format and compile, to pick per-device defaults.

    python benchmarks/train_settings.py [--models quicknet:28:1:10 quicknet:28:1:10:whiten=true] [--steps 30]

Times forward + backward + SGD step on random input of the model's size (data loading excluded),
after warm-up steps; prints images/s per setting and each setting's speed against fp32.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
import yaml

from tinyvision.engine.loop import autocast
from tinyvision.models.outputs import split_outputs
from tinyvision.models import create_model, get_entry

SETTINGS = [  # (label, autocast dtype, channels_last, compile)
    ("fp32", None, False, False),
    ("fp32 + channels_last", None, True, False),
    ("fp32 + channels_last + compile", None, True, True),
    ("bf16", torch.bfloat16, False, False),
    ("bf16 + channels_last", torch.bfloat16, True, False),
    ("bf16 + compile", torch.bfloat16, False, True),
    ("bf16 + channels_last + compile", torch.bfloat16, True, True),
]


def measure(name, size, in_chans, classes, batch, steps, device, dtype, channels_last, compile_, kwargs=None) -> float:
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = create_model(name, num_classes=classes, in_chans=in_chans, **(kwargs or {})).to(device, memory_format=fmt)
    step_model = torch.compile(model) if compile_ else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, in_chans, size, size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, classes, (batch,), device=device)

    def step():
        with autocast(device, dtype):
            loss = F.cross_entropy(split_outputs(step_model(x))[0].float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5 if compile_ else 3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["quicknet:28:1:10", "seed002-net1:64:3:200", "resnet18:32:3:10"],
                    help="name:size:in_chans:classes[:key=value,...] (model kwargs, YAML values)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()
    device = torch.device(a.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {a.batch}")
    if device.type == "cpu":  # what train.precision=auto decides from (tinyvision.device)
        from tinyvision.device import BF16_MIN_SPEEDUP, cpu_bf16_speedup, precision_name, resolve_precision

        probe = f"{cpu_bf16_speedup():.2f}x" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "no bf16 here"
        print(f"bf16 probe: {probe} (bf16 from {BF16_MIN_SPEEDUP}x) -> auto = "
              f"{precision_name(resolve_precision('auto', device))}")
    print(f"{'model':28s} {'setting':30s} {'images/s':>10s} {'vs fp32':>8s}")
    for spec in a.models:
        name, size, in_chans, classes, *extra = spec.split(":")
        kwargs = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in extra[0].split(","))} if extra else {}
        get_entry(name)
        label_name = name + (f"[{extra[0]}]" if extra else "")
        base = None
        for label, dtype, cl, comp in SETTINGS:
            if comp and a.no_compile:
                continue
            rate = measure(name, int(size), int(in_chans), int(classes), a.batch, a.steps, device, dtype, cl, comp,
                           kwargs)
            base = base or rate
            print(f"{label_name + ' @' + size:28s} {label:30s} {rate:10.0f} {rate / base:7.2f}x", flush=True)


if __name__ == "__main__":
    main()
