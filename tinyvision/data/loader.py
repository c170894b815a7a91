"""Batches straight from the uint8 cache, with no per-sample Python in the hot path.

The order of epoch e is a permutation drawn from (seed, e) alone, so any epoch can be
replayed, and `state_dict()` records the next batch so that a resumed run continues
mid-epoch with exactly the batches it would have seen. Under DDP every rank draws the
same permutation and takes every world_size-th entry, so the ranks partition the epoch.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from tinyvision.data.dataset import Split, available_memory
from tinyvision.data.rowfile import RowReader, read_rows
from tinyvision.device import keep_freed_cpu_memory

# Keep the whole split on the accelerator when it takes at most this share of free memory.
DEVICE_MEMORY_SHARE = 0.25
# in_memory=None (auto): gather the split into RAM when it takes at most this share of available memory.
RAM_SHARE = 0.5
PREFETCH = 4  # batches read ahead by the background thread when streaming from disk


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True, repeat: int = 1) -> np.ndarray:
    """The epoch's order: `repeat` passes over the n rows, each its own permutation of (seed, epoch, pass)."""
    if not shuffle:
        return np.tile(np.arange(n), repeat)
    passes = [np.random.default_rng([seed, epoch] + ([r] if r else [])).permutation(n) for r in range(repeat)]
    return passes[0] if repeat == 1 else np.concatenate(passes)


def batch_generator(device: torch.device, seed: int, epoch: int, batch: int, rank: int) -> torch.Generator:
    """The RNG that augments one batch: a function of its position only, so resume is exact."""
    g = torch.Generator(device=device)
    g.manual_seed(int(np.random.SeedSequence([seed, epoch, batch, rank, 0xA06]).generate_state(1, np.uint64)[0] >> 1))
    return g


class BatchLoader:
    """Iterate (images, labels) batches of a Split for one epoch at a time.

    images come out uint8 NCHW on `device` unless `transform(x_uint8, generator)` is given,
    which turns them into model input (see tinyvision.data.augment). For a segmentation split
    the targets are its masks (N, H, W) int64, and the transform moves them with the images.
    `in_memory`: gather the split into RAM (or device memory) once; False: stream each batch from
    the cache file; None (default): in RAM when it takes at most RAM_SHARE of available memory.
    So a val pass, a prediction or a feature extraction over a split larger than memory streams."""

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
        rank: int = 0,
        world_size: int = 1,
        transform: Callable | None = None,
        in_memory: bool | None = None,
        repeat: int = 1,
    ):
        self.split, self.batch_size = split, batch_size
        self.shuffle = shuffle
        self.drop_last = shuffle if drop_last is None else drop_last
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.device = torch.device(device)
        self.transform = transform
        self.repeat = max(int(repeat), 1)  # passes over the split per epoch (an epoch-length multiplier)
        if self.device.type == "cpu":
            keep_freed_cpu_memory()  # every batch is a fresh tensor; see tinyvision.device
        self.epoch, self.batch_index = 0, 0
        rows = self._row_ids = split.rows  # computed once: a view's rows, or arange for a whole split
        self._rows = torch.from_numpy(rows)
        labels = torch.from_numpy(np.asarray(split.labels, dtype=np.int64))
        self.segmentation = split.masks is not None
        if in_memory is None:  # auto: in RAM when it fits comfortably, else streamed from the cache file
            need = len(rows) * int(np.prod(split.images.shape[1:])) * split.images.dtype.itemsize
            in_memory = need <= RAM_SHARE * (available_memory() or need / RAM_SHARE)
        self.in_memory = bool(in_memory)
        if self.segmentation and in_memory:  # the targets are the masks, gathered with the images
            labels = torch.from_numpy(read_rows(split.masks, rows))
        if in_memory:
            # One gather of the view's rows into RAM (or device memory); batches then index a tensor.
            images = torch.from_numpy(read_rows(split.images, rows))
            self._images, self._labels = images, labels if self.segmentation else labels[self._rows]
            self._local = torch.arange(len(rows))
            if self.device.type != "cpu" and self._fits_on_device(images):
                self._images, self._labels = images.to(self.device), self._labels.to(self.device)
        else:
            self._images, self._labels, self._local = None, labels, None

    def _fits_on_device(self, t: torch.Tensor) -> bool:
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            return t.numel() <= DEVICE_MEMORY_SHARE * free
        return True

    def _shard(self, epoch: int) -> np.ndarray:
        order = epoch_order(len(self._rows), self.seed, epoch, self.shuffle, self.repeat)
        if self.drop_last and self.world_size > 1:
            order = order[: len(order) // self.world_size * self.world_size]  # equal steps on every rank
        return order[self.rank :: self.world_size]

    def _num_batches(self, shard_len: int) -> int:
        return shard_len // self.batch_size if self.drop_last else -(-shard_len // self.batch_size)

    def __len__(self) -> int:
        n, w = len(self._rows) * self.repeat, self.world_size
        shard_len = n // w if self.drop_last else len(range(self.rank, n, w))  # as _shard, without the permutation
        return self._num_batches(shard_len)

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.batch_index = epoch, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch_index": self.batch_index, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.batch_index = int(state["epoch"]), int(state["batch_index"])

    def _fetch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.from_numpy(idx).to(self._images.device)
        # index_select, not self._images[t]: 0.1 ms against 0.8 ms for 256 x 64 x 64 x 3 here
        x, y = self._images.index_select(0, t), self._labels.index_select(0, t)
        return self._to_device(x, y)

    def _to_device(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.permute(0, 3, 1, 2)  # NHWC storage -> NCHW view (channels_last layout for free)
        if x.device != self.device:
            pin = self.device.type == "cuda"
            x = (x.pin_memory() if pin else x).to(self.device, non_blocking=pin)
            y = y.to(self.device, non_blocking=pin)
        return x, y

    def _read(self, readers: tuple, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch straight from the cache file (streaming mode), as CPU tensors."""
        rows = self._row_ids[idx]
        x = torch.from_numpy(readers[0].read(rows))
        if self.segmentation:
            return x, torch.from_numpy(readers[1].read(rows))
        return x, self._labels.index_select(0, torch.from_numpy(rows))

    def __iter__(self):
        shard = self._shard(self.epoch)
        n_batches = self._num_batches(len(shard))
        batch_rows = lambda b: shard[b * self.batch_size : (b + 1) * self.batch_size]  # noqa: E731
        if hasattr(self.transform, "set_epoch"):  # ops with one draw per epoch (switch-off per=epoch)
            self.transform.set_epoch(self.seed, self.epoch)
        ahead, readers = None, ()
        if self._images is None:  # streaming: a thread reads the next batches while this one trains
            from concurrent.futures import ThreadPoolExecutor

            readers = (RowReader(self.split.images),) + ((RowReader(self.split.masks),) if self.segmentation else ())
            ahead = ThreadPoolExecutor(1, thread_name_prefix="tinyvision-read")
            read = lambda b: ahead.submit(self._read, readers, batch_rows(b))  # noqa: E731
            pending = {b: read(b) for b in range(self.batch_index, min(self.batch_index + PREFETCH, n_batches))}
        try:
            yield from self._batches(shard, n_batches, batch_rows, read if ahead else None, pending if ahead else None)
        finally:
            if ahead is not None:
                ahead.shutdown(wait=True, cancel_futures=True)
            for r in readers:
                r.close()

    def _batches(self, shard, n_batches, batch_rows, read, pending):
        while self.batch_index < n_batches:
            b = self.batch_index
            if read is not None:
                x, y = pending.pop(b).result()
                if b + PREFETCH < n_batches:
                    pending[b + PREFETCH] = read(b + PREFETCH)
                x, y = self._to_device(x, y)
            else:
                x, y = self._fetch(batch_rows(b))
            if self.transform is not None:
                g = batch_generator(x.device, self.seed, self.epoch, b, self.rank)
                if hasattr(self.transform, "set_rows"):  # ops that follow each image across epochs
                    self.transform.set_rows(batch_rows(b))
                x, y = self.transform(x, g, y.long()) if self.segmentation else (self.transform(x, g), y)
            elif self.segmentation:
                y = y.long()
            self.batch_index += 1  # the state now names the next batch: checkpoint after the step
            yield x, y
        self.epoch, self.batch_index = self.epoch + 1, 0
