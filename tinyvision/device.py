"""Device choices shared by training and evaluation: which device, autocast dtype and memory layout.

The CPU defaults are measured (benchmarks/train_settings.py), not assumed.
"""
from __future__ import annotations

import torch

from tinyvision.errors import TinyVisionError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TinyVisionError(f"device {name!r} asked for, but CUDA is not available here")
    return dev


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, None for fp32. auto: bf16 where the hardware has it (measured 2x on this
    CPU), else fp16 on CUDA, else fp32."""
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    table = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in table:
        raise TinyVisionError(f"precision {name!r}: choose auto, fp32, bf16 or fp16")
    return table[name]


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
