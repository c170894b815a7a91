"""Rows of a cache file read with system calls, never through a memory map.

Indexing a memmap faults the file's pages into the process: they count in its RSS until the
kernel reclaims them, so gathering 6 GB of a 30 GB cache through the map peaked at 14.8 GB
(the pages plus the copy). Here each run of consecutive rows is one preadv, scattered by the
kernel straight into the rows' places in the result: one copy, the GIL released while the disk
works, nothing left mapped.

`RowReader` is the streaming loader's: it opens the file with O_DIRECT where the filesystem
allows, so a cache larger than memory is read by DMA instead of through the page cache, which
under random batches only churns. Cold reads of 128 random 320 px rows, on this 2-core host:
17-19 ms of CPU through O_DIRECT against 37-51 ms buffered (benchmarks/big_cache.py trains
with the reader running beside the model, so its CPU time is the model's loss).
"""
from __future__ import annotations

import errno
import mmap
import os

import numpy as np

from tinyvision.errors import TinyVisionError

MAX_READ = 64 << 20  # bytes per system call (Linux caps one read near 2 GB; smaller keeps it prompt)
ALIGN = 4096  # O_DIRECT wants offsets, lengths and buffers on the device's block boundaries
IOV_MAX = 1024  # buffers one preadv may scatter into (Linux's limit; more is EINVAL)


def _runs(rows: np.ndarray, row_bytes: int, longest: int):
    """(order, sorted rows, [(first sorted index, end)]): rows sorted, cut into runs of consecutive
    rows, each of at most `longest` rows."""
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    starts = np.flatnonzero(np.diff(sorted_rows, prepend=-2) != 1).tolist() + [len(rows)]
    runs = []
    for i, end in zip(starts[:-1], starts[1:]):
        runs += [(j, min(j + longest, end)) for j in range(i, end, longest)]
    return order, sorted_rows, runs


def _is_file_backed(images) -> bool:
    return isinstance(images, np.memmap) and images.filename is not None and hasattr(os, "preadv")


def read_rows(images: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """images[rows] as a new array: by preadv for a memmap over a file (through the page cache,
    for one-off reads), by indexing otherwise."""
    reader = RowReader(images, direct=False)
    try:
        return reader.read(rows)
    finally:
        reader.close()


class RowReader:
    """Reads batches of rows of one memmapped split, keeping its file open; O_DIRECT when
    `direct` and the filesystem takes it (not tmpfs, for one), buffered preadv otherwise.
    One thread at a time (the loader's read-ahead thread): the bounce buffer is shared."""

    def __init__(self, images: np.ndarray, direct: bool = True):
        self.images = images
        self.row_bytes = int(np.prod(images.shape[1:])) * images.dtype.itemsize
        self.fd, self.direct = None, False
        if not _is_file_backed(images):
            return
        if direct and hasattr(os, "O_DIRECT"):
            try:
                self.fd, self.direct = os.open(images.filename, os.O_RDONLY | os.O_DIRECT), True
            except OSError:  # EINVAL: the filesystem does not do direct I/O
                pass
        if self.fd is None:
            self.fd = os.open(images.filename, os.O_RDONLY)
        self._buf = None

    def _bounce(self, nbytes: int) -> memoryview:
        """A page-aligned buffer of at least nbytes (anonymous mmap: aligned by construction)."""
        if self._buf is None or len(self._buf) < nbytes:
            self._buf = mmap.mmap(-1, -(-nbytes // ALIGN) * ALIGN)
        return memoryview(self._buf)

    def read(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if self.fd is None:
            return np.ascontiguousarray(self.images[rows])
        if self.direct:
            try:
                return self._read_direct(rows)
            except OSError as e:  # EINVAL: opened, but this filesystem refuses direct reads
                if e.errno != errno.EINVAL:
                    raise
                os.close(self.fd)
                self.fd, self.direct = os.open(self.images.filename, os.O_RDONLY), False
        return self._read_buffered(rows)

    def _empty(self, n: int) -> np.ndarray:
        return np.empty((n, *self.images.shape[1:]), dtype=self.images.dtype)

    def _truncated(self, row) -> TinyVisionError:
        return TinyVisionError(f"{self.images.filename}: truncated (row {int(row)} is past its end)")

    def _read_direct(self, rows: np.ndarray) -> np.ndarray:
        rb = self.row_bytes
        out = self._empty(len(rows))
        flat = out.reshape(len(rows), rb).view(np.uint8)
        order, sorted_rows, runs = _runs(rows, rb, max(1, MAX_READ // rb))
        buf = self._bounce(min(len(rows), max(1, MAX_READ // rb)) * rb + 2 * ALIGN)
        for i, j in runs:
            start = self.images.offset + int(sorted_rows[i]) * rb
            lo, hi = start // ALIGN * ALIGN, -(-(start + rb * (j - i)) // ALIGN) * ALIGN
            got = os.preadv(self.fd, [buf[: hi - lo]], lo)  # the file's end may cut the last block short
            if got < start - lo + rb * (j - i):
                raise self._truncated(sorted_rows[j - 1])
            block = np.frombuffer(buf, np.uint8, rb * (j - i), start - lo).reshape(j - i, rb)
            flat[order[i:j]] = block
        return out

    def _read_buffered(self, rows: np.ndarray) -> np.ndarray:
        rb = self.row_bytes
        out = self._empty(len(rows))
        flat = memoryview(out.reshape(-1).view(np.uint8))
        order, sorted_rows, runs = _runs(rows, rb, max(1, min(IOV_MAX, MAX_READ // rb)))  # a buffer per row
        for i, j in runs:
            places = [flat[k * rb : (k + 1) * rb] for k in order[i:j].tolist()]
            if os.preadv(self.fd, places, self.images.offset + int(sorted_rows[i]) * rb) != rb * (j - i):
                raise self._truncated(sorted_rows[j - 1])
        return out

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
