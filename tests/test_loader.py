import subprocess
import sys

import numpy as np
import pytest
import torch

from tinyvision.data import Split
from tinyvision.data.augment import build_augment
from tinyvision.data.loader import BatchLoader
from tinyvision.errors import TinyVisionError


def make_split(n=103, h=8):
    images = np.arange(n, dtype=np.uint8)[:, None, None, None].repeat(h, 1).repeat(h, 2).repeat(3, 3)
    return Split("train", images, np.arange(n, dtype=np.int64) % 7)


def ids(batches):
    return [y for _, y in batches]


def test_batches_shapes_and_labels():
    s = make_split()
    loader = BatchLoader(s, 16, shuffle=True, seed=0)
    batches = list(loader)
    assert len(batches) == len(loader) == 6  # drop_last while shuffling
    x, y = batches[0]
    assert x.shape == (16, 3, 8, 8) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert torch.equal(y, x[:, 0, 0, 0].long() % 7)  # labels stay with their images


def test_order_reproducible_from_seed_and_epoch():
    s = make_split()
    a, b = BatchLoader(s, 10, seed=5), BatchLoader(s, 10, seed=5)
    b.set_epoch(3)
    a.set_epoch(3)
    ea = [x[:, 0, 0, 0].tolist() for x, _ in a]
    eb = [x[:, 0, 0, 0].tolist() for x, _ in b]
    assert ea == eb
    a.set_epoch(4)
    assert [x[:, 0, 0, 0].tolist() for x, _ in a] != ea
    c = BatchLoader(s, 10, seed=6)
    c.set_epoch(3)
    assert [x[:, 0, 0, 0].tolist() for x, _ in c] != ea


def test_resume_mid_epoch_gives_same_batches_and_augmentation():
    s = make_split()
    aug = build_augment("flip,crop:padding=2,rotate:degrees=20", (0.5,) * 3, (0.2,) * 3, image_size=8)
    full = BatchLoader(s, 8, seed=1, transform=aug)
    full.set_epoch(2)
    expected = list(full)
    part = BatchLoader(s, 8, seed=1, transform=aug)
    part.set_epoch(2)
    it = iter(part)
    for _ in range(5):
        next(it)
    state = part.state_dict()
    assert state == {"epoch": 2, "batch_index": 5, "seed": 1}
    resumed = BatchLoader(s, 8, seed=1, transform=aug)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == len(expected) - 5
    for (x1, y1), (x2, y2) in zip(expected[5:], rest):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert resumed.state_dict()["epoch"] == 3  # finished epochs advance


@pytest.mark.parametrize("world", [2, 3])
def test_eval_sharding_covers_each_sample_exactly_once(world):
    s = make_split(101)
    seen = []
    for r in range(world):
        loader = BatchLoader(s, 16, shuffle=False, rank=r, world_size=world)
        seen += [int(v) for x, _ in loader for v in x[:, 0, 0, 0]]
    assert sorted(seen) == list(range(101))


def test_train_sharding_disjoint_equal_steps():
    s = make_split(100)
    shards = [BatchLoader(s, 8, shuffle=True, seed=9, rank=r, world_size=2) for r in range(2)]
    got = [[int(v) for x, _ in l for v in x[:, 0, 0, 0]] for l in shards]
    assert len(shards[0]) == len(shards[1]) == 6
    assert not set(got[0]) & set(got[1])
    # together the shards are a permutation of one epoch (minus drop_last's remainder)
    assert len(set(got[0]) | set(got[1])) == 96


def test_view_split_and_memmap_mode(tmp_path):
    s = make_split(50)
    path = tmp_path / "imgs.npy"
    np.save(path, s.images)
    mm = Split("train", np.load(path, mmap_mode="r"), s.labels)
    view = mm.view("sub", np.arange(0, 50, 5))
    a = [x for x, _ in BatchLoader(view, 4, shuffle=False, in_memory=True)]
    b = [x for x, _ in BatchLoader(view, 4, shuffle=False, in_memory=False)]
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert torch.cat(a)[:, 0, 0, 0].tolist() == list(range(0, 50, 5))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_loader_keeps_data_on_device():
    s = make_split()
    aug = build_augment("standard", (0.5,) * 3, (0.2,) * 3, image_size=8)
    loader = BatchLoader(s, 16, device="cuda", transform=aug)
    x, y = next(iter(loader))
    assert x.is_cuda and y.is_cuda and loader._images.is_cuda


ALLOC_SCRIPT = """
import resource, sys, torch
from tinyvision import device

def faults(rounds=10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        torch.empty(256, 3, 64, 64).fill_(1.0)  # a fresh 12.6 MB batch, freed at once
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults(2)
untuned = faults()
ok = device.keep_freed_cpu_memory() and device.keep_freed_cpu_memory()
faults(2)
print(ok, untuned, faults())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_batches_are_reused_without_page_faults():
    # glibc unmaps a freed 12.6 MB block, so the next batch page-faults all of it again;
    # after keep_freed_cpu_memory the pages stay mapped and are reused
    out = subprocess.run([sys.executable, "-c", ALLOC_SCRIPT], capture_output=True, text=True, check=True)
    ok, untuned, tuned = out.stdout.split()
    assert ok == "True"
    assert int(untuned) > 5000  # ten batches of 3,072 pages each; 15,360 faults measured here
    assert int(tuned) < int(untuned) // 20


def test_repeat_makes_an_epoch_several_passes():
    import numpy as np

    from tinyvision.data.dataset import Split
    from tinyvision.data.loader import BatchLoader

    s = Split("train", np.zeros((10, 2, 2, 1), np.uint8), np.arange(10))
    one = BatchLoader(s, 5, seed=3)
    three = BatchLoader(s, 5, seed=3, repeat=3)
    assert len(three) == 3 * len(one) == 6
    seen = torch.cat([y for _, y in three])
    assert sorted(seen.tolist()) == sorted(list(range(10)) * 3)  # each image once per pass
    assert torch.equal(seen[:10], torch.cat([y for _, y in one]))  # the first pass is the plain epoch
    assert not torch.equal(seen[:10], seen[10:20])  # the others are permuted afresh


def test_streaming_from_the_cache_file_gives_the_same_batches(tmp_path, monkeypatch):
    """in_memory=False reads each batch from the memmapped file (runs of rows by preadv, a
    read-ahead thread); the batches are those of the in-RAM path, and resume works the same."""
    from tinyvision.data.rowfile import read_rows

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (50, 4, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "x.npy", arr)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    rows = np.array([7, 3, 4, 5, 40, 0, 3])
    np.testing.assert_array_equal(read_rows(mm, rows), arr[rows])
    s = Split("train", mm, np.arange(50) % 5)
    ram, disk = BatchLoader(s, 8, seed=1, in_memory=True), BatchLoader(s, 8, seed=1, in_memory=False)
    assert ram.in_memory and not disk.in_memory
    for epoch in (0, 1):
        ram.set_epoch(epoch), disk.set_epoch(epoch)
        for (xa, ya), (xb, yb) in zip(ram, disk):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    disk.set_epoch(2)
    it = iter(disk)
    next(it), next(it)
    state = disk.state_dict()
    rest = [y for _, y in it]
    again = BatchLoader(s, 8, seed=1, in_memory=False)
    again.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(rest, [y for _, y in again]))
    view = s.view("v", np.array([1, 5, 9, 30]))  # a view streams its own rows only
    assert torch.equal(next(iter(BatchLoader(view, 4, shuffle=False, in_memory=False)))[0].permute(0, 2, 3, 1),
                       torch.from_numpy(arr[[1, 5, 9, 30]]))
    assert BatchLoader(s, 8).in_memory  # auto, the default: 2.4 kB fits
    import tinyvision.data.loader as loader_module

    monkeypatch.setattr(loader_module, "available_memory", lambda: 3000)  # 2.4 kB is more than half of it
    auto = BatchLoader(s, 8, seed=1)
    assert not auto.in_memory
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(BatchLoader(s, 8, seed=1, in_memory=True), auto))


@pytest.mark.parametrize("direct", [False, True])
def test_row_reader_reads_any_rows_exactly_and_names_a_truncated_file(tmp_path, direct):
    """RowReader (O_DIRECT through an aligned bounce buffer where the filesystem allows) and
    read_rows give images[rows] for unsorted rows, repeats, runs, and a file's last row; a file
    cut short after it was mapped is an error naming it."""
    from tinyvision.data.rowfile import RowReader, read_rows

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (3000, 8, 9, 3), dtype=np.uint8)  # 216-byte rows: runs cross 4 KB blocks
    np.save(tmp_path / "x.npy", arr)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    reader = RowReader(mm, direct=direct)
    # the whole file in order: one run of 3,000 rows, more than one preadv may scatter into
    for rows in (np.array([2999, 2, 1, 0, 2]), rng.permutation(3000)[:77], np.arange(3000), np.arange(100, 140)):
        np.testing.assert_array_equal(reader.read(rows), arr[rows])
        np.testing.assert_array_equal(read_rows(mm, rows), arr[rows])
    with open(tmp_path / "x.npy", "r+b") as f:  # cut the last row in half
        f.truncate(mm.offset + 2999 * 216 + 100)
    with pytest.raises(TinyVisionError, match=r"x\.npy: truncated"):
        reader.read(np.array([3, 2999]))
    with pytest.raises(TinyVisionError, match=r"x\.npy: truncated"):
        read_rows(mm, np.array([3, 2999]))
    reader.close()


def test_loader_names_rows_for_alternating_flip_across_epochs():
    # each image's left column holds its id and its right column 255: mirrored or not is readable
    n = 40
    images = np.zeros((n, 4, 4, 3), dtype=np.uint8)
    images[:, :, 0, :] = np.arange(n, dtype=np.uint8)[:, None, None]
    images[:, :, -1, :] = 255
    aug = build_augment("flip:alternate=1", (0.0,) * 3, (1 / 255,) * 3, image_size=4)
    loader = BatchLoader(Split("train", images, np.zeros(n, dtype=np.int64)), 8, seed=3, transform=aug)
    seen = []
    for epoch in range(3):
        loader.set_epoch(epoch)
        state = {}
        for x, _ in loader:
            for img in x:
                mirror = bool(img[0, 0, 0].round() == 255)
                state[int(img[0, 0, -1 if mirror else 0].round())] = mirror
        seen.append(state)
    assert len(seen[0]) == n and 0 < sum(seen[0].values()) < n
    assert all(seen[1][i] != seen[0][i] and seen[2][i] == seen[0][i] for i in range(n))
