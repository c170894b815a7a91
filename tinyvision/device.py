"""Device choices shared by training and evaluation: which device, autocast dtype and memory layout.

The CPU defaults are measured (benchmarks/train_settings.py), not assumed.
"""
from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import torch
from torch import nn

from tinyvision.atomic import write_text
from tinyvision.errors import TinyVisionError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TinyVisionError(f"device {name!r} asked for, but CUDA is not available here")
    return dev


def resolve_precision(name: str, device: torch.device, earlier: str | None = None,
                      probe_record: Path | None = None) -> torch.dtype | None:
    """The autocast dtype, None for fp32. auto: on CUDA bf16 where supported, else fp16; on a CPU,
    bf16 where the hardware has it and it measurably trains faster here (host_bf16_speedup, kept
    in `probe_record` once measured), else fp32. `earlier` is the precision a resumed run started
    with (precision_name's spelling): auto keeps it, so that a resumed run goes on exactly as it
    began."""
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return None
        if earlier in ("fp32", "bfloat16"):
            return precision_dtype(earlier)
        return torch.bfloat16 if host_bf16_speedup(probe_record) >= BF16_MIN_SPEEDUP else None
    table = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in table:
        raise TinyVisionError(f"precision {name!r}: choose auto, fp32, bf16 or fp16")
    return table[name]


BF16_MIN_SPEEDUP = 1.1  # bf16 rounds; take it on a CPU only for a clear gain
PROBE_RECORD = "host-probes.json"  # in the cache root: host_bf16_speedup's readings, one per host


@functools.cache
def cpu_bf16_speedup() -> float:
    """How much faster one training step of a small conv block runs under bf16 autocast than in
    fp32 on this CPU (both channels_last; the best of 4 interleaved steps each, the median of three
    such ratios; under a second, once per process).

    Having the instructions is not enough to gain from them. On two 2-core hosts that both report
    AVX-512 BF16, whole-model steps (benchmarks/train_settings.py) went opposite ways: an AMD EPYC
    (Zen 4) trained seed002-net1 2.6x and quicknet 2.1x faster in bf16 than in fp32, an Intel
    Xeon (family 6 model 207, under KVM, no AMX exposed) 0.8-0.9x, ResNet-18 and VGG16 at 32 px
    0.75x and 0.86x. This probe gave 0.78-0.86 on the Intel host, tracking those ratios."""
    with torch.random.fork_rng(devices=[]):  # the caller's random stream stays as it was
        block = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                              nn.Conv2d(64, 64, 3, padding=1, bias=False)).to(memory_format=torch.channels_last)
        x = torch.randn(8, 64, 32, 32).contiguous(memory_format=torch.channels_last)

    def step(bf16: bool) -> float:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = block(x)
        y.float().square().mean().backward()
        return time.perf_counter() - t0

    def ratio() -> float:
        best = {False: float("inf"), True: float("inf")}
        for _ in range(4):  # interleaved, and the minimum: another process on the CPU only slows a step down
            for bf16 in (False, True):
                best[bf16] = min(best[bf16], step(bf16))
        return best[False] / best[True]

    step(False), step(True)  # first calls build the kernels
    # The median of three: on the Intel host one probe of 17 read 1.59, the others 0.69-0.85
    # (likely the shared host slowing the fp32 steps), and a single reading decided the whole run.
    return sorted(ratio() for _ in range(3))[1]


def host_key() -> str:
    """What the bf16 verdict depends on: the CPU model, its thread count here, and torch."""
    model = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        import platform

        model = platform.processor() or model
    return f"{model} | {torch.get_num_threads()} threads | torch {torch.__version__}"


def host_bf16_speedup(record: Path | None = None) -> float:
    """cpu_bf16_speedup, measured once per host (host_key) and kept in the JSON file `record` (the
    cache root's PROBE_RECORD for training and evaluation), so that every run on one machine makes the
    same precision choice. A timing probe on a shared host can misread (see cpu_bf16_speedup);
    two runs that were meant to be compared must not differ in precision because of it. Delete
    the file to measure again; no record: measured once per process."""
    if record is None:
        return cpu_bf16_speedup()
    record = Path(record)
    try:
        known = json.loads(record.read_text())
        known = known if isinstance(known, dict) else {}
    except (OSError, ValueError):  # none yet, or unreadable: measure and write a good one
        known = {}
    key = host_key()
    if isinstance(known.get(key), (int, float)):
        return float(known[key])
    known[key] = ratio = cpu_bf16_speedup()
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        write_text(record, json.dumps(known, indent=1) + "\n")
    except OSError:  # a read-only cache root: the verdict still holds for this process
        pass
    return ratio


def precision_name(dtype: torch.dtype | None) -> str:
    """How a run's info and summary name its autocast dtype: fp32, bfloat16 or float16."""
    return "fp32" if dtype is None else str(dtype).replace("torch.", "")


def precision_dtype(name: str) -> torch.dtype | None:
    """The inverse of precision_name, for reading a run back."""
    return {"fp32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def resolve_channels_last(value: str, device: torch.device, amp_dtype: torch.dtype | None) -> bool:
    """auto: on. CUDA's tensor-core convs want NHWC; on CPU oneDNN's NHWC kernels measured faster
    in every case we timed (benchmarks/train_settings.py): 1.3-1.4x with bf16 on an AVX-512 BF16
    host, 1.3-1.5x in fp32 on an AVX2 host, and no slower in fp32 on the AVX-512 one."""
    if value not in ("auto", "on", "off"):
        raise TinyVisionError(f"channels_last {value!r}: choose auto, on or off")
    return True if value == "auto" else value == "on"


# glibc's malloc constants (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_allocator_tuned = False


def keep_freed_cpu_memory(threshold: int = 256 << 20) -> bool:
    """Let glibc reuse freed memory instead of handing every large block back to the OS.

    A training step allocates fresh multi-megabyte tensors (a 256 x 3 x 64 x 64 float batch is
    12.6 MB) and frees them a step later. glibc serves blocks above its mmap threshold (at most
    32 MB) with mmap and unmaps them on free, so the next step page-faults and zeroes them again:
    1.4 ms per 12.6 MB here, more than the batch's whole augmentation. Raising the mmap and trim
    thresholds keeps those pages in the heap for reuse (0.08 ms), the effect PyTorch's CPU tuning
    guide gets by preloading jemalloc or tcmalloc. Blocks above `threshold` (the in-RAM dataset)
    are still mapped. Two epochs of the Fashion-MNIST recipe: 3,810 images/s against 3,527, peak
    RSS 983 MB against 978. Process-wide and idempotent; a no-op (False) where the C library is
    not glibc.
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # no C library by that name, or no mallopt in it
        return False
    _allocator_tuned = bool(mallopt(_M_MMAP_THRESHOLD, threshold) and mallopt(_M_TRIM_THRESHOLD, 2 * threshold))
    return _allocator_tuned
