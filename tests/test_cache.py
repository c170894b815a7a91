import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fixtures
from tinyvision.data import Dataset, prepare
from tinyvision.data.cache import cache_root, channel_stats


def test_reused_while_source_unchanged_rebuilt_when_changed(tiny_tree):
    a = prepare("tiny-imagenet", tiny_tree, progress=False)
    stamp = (a.path / "meta.json").stat().st_mtime_ns
    b = prepare("tiny-imagenet", tiny_tree, progress=False)
    assert b.path == a.path and (b.path / "meta.json").stat().st_mtime_ns == stamp
    (tiny_tree / "wnids.txt").write_text((tiny_tree / "wnids.txt").read_text() + "\n")  # size changes
    c = prepare("tiny-imagenet", tiny_tree, progress=False)
    assert c.path != a.path


def test_stats_are_true_mean_and_std(tiny_tree):
    ds = prepare("tiny-imagenet", tiny_tree, progress=False)
    x = np.asarray(ds.split("train").images, dtype=np.float64) / 255
    assert np.allclose(ds.mean, x.mean((0, 1, 2)), atol=1e-12)
    assert np.allclose(ds.std, x.std((0, 1, 2)), atol=1e-12)  # over all pixels, not per-image averages


def test_channel_stats_chunking_is_exact():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (50, 7, 5, 3), dtype=np.uint8)
    m1, s1 = channel_stats(imgs, chunk=7)
    x = imgs / 255.0
    assert np.allclose(m1, x.mean((0, 1, 2))) and np.allclose(s1, x.std((0, 1, 2)))


def test_killed_build_leaves_nothing_that_loads(tiny_tree, tmp_path):
    """SIGKILL a build halfway through writing: no cache loads, and the next build succeeds."""
    cache = tmp_path / "killcache"
    marker = tmp_path / "halfway"
    code = textwrap.dedent(f"""
        import time, numpy as np
        import tinyvision.data.cache as c
        real_save = np.save
        def slow_save(path, arr):
            real_save(path, arr)
            open({str(marker)!r}, "w").close()
            time.sleep(60)
        c.np.save = slow_save
        c.prepare("tiny-imagenet", {str(tiny_tree)!r}, cache_dir={str(cache)!r}, progress=False, workers=1)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(600):
            if marker.exists():
                break
            time.sleep(0.05)
        assert marker.exists(), "build never reached the write stage"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    leftovers = list((cache / "tiny-imagenet").iterdir())
    assert leftovers and all(p.name.startswith(".tmp-") for p in leftovers)  # half-written, hidden
    assert not any((p / "meta.json").exists() for p in leftovers)
    for p in leftovers:
        with pytest.raises(Exception):
            Dataset.load(p)
    ds = prepare("tiny-imagenet", tiny_tree, cache_dir=cache, progress=False)
    assert ds.meta["splits"]["train"] == 12
    assert [p.name for p in (cache / "tiny-imagenet").iterdir()] == [ds.path.name]  # stale temp removed


def test_failed_build_leaves_nothing(tiny_tree):
    (tiny_tree / "test" / "images" / "test_1.JPEG").write_bytes(b"garbage")
    with pytest.raises(Exception):
        prepare("tiny-imagenet", tiny_tree, progress=False)
    assert not any((cache_root() / "tiny-imagenet").iterdir())


def test_cache_dir_env_and_argument(tiny_tree, tmp_path, monkeypatch):
    ds = prepare("tiny-imagenet", tiny_tree, progress=False)
    assert str(ds.path).startswith(os.environ["TINYVISION_CACHE_DIR"])
    other = prepare("tiny-imagenet", tiny_tree, cache_dir=tmp_path / "elsewhere", progress=False)
    assert str(other.path).startswith(str(tmp_path / "elsewhere"))


def test_cached_dataset_found_without_source(tmp_path, monkeypatch):
    src = fixtures.cifar10(tmp_path)
    ds = prepare("cifar10", src, progress=False)
    again = prepare("cifar10", None, progress=False, allow_download=False)
    assert again.path == ds.path


def test_holdout_is_stratified_seeded_view(tiny_tree):
    ds = prepare("tiny-imagenet", tiny_tree, progress=False)
    rest, held = ds.holdout(0.25, seed=3)
    assert len(rest) + len(held) == 12
    assert np.bincount(held.targets).tolist() == [1, 1, 1]
    assert not set(rest.rows) & set(held.rows)
    assert held.images is ds.split("train").images  # a view on the cache, not a copy
    rest2, held2 = ds.holdout(0.25, seed=3)
    assert np.array_equal(held.rows, held2.rows)
    _, held3 = ds.holdout(0.25, seed=4)
    assert len(held3) == 3


def test_stratified_count_exact(tiny_tree):
    ds = prepare("tiny-imagenet", tiny_tree, progress=False)
    sub, _ = ds.split("train").stratified(count=7, seed=0)
    assert len(sub) == 7 and set(np.bincount(sub.targets)) <= {2, 3}


def test_streamed_build_in_chunks_equals_decoding_everything(tmp_path, monkeypatch):
    """The cache streams each split to disk a chunk at a time (here 4 images), decoded in worker
    processes with a bounded number in flight; the result is what decoding all at once gives,
    --skip-bad shrinks the written file's row count, and the file is a plain .npy."""
    import tinyvision.data.decode as decode
    from tinyvision.data.archive import Source
    from tinyvision.data.cache import NpyWriter

    monkeypatch.setattr(decode, "CHUNK", 4)
    src = fixtures.folder_tree(tmp_path / "f", classes=("a", "b", "c"), per_class=5, splits=("train",))
    (src / "train" / "b" / "b_2.png").write_bytes(b"not a png")  # one unreadable file, mid-chunk
    ds = prepare("folder", src, skip_bad=True, workers=2, progress=False)
    names = sorted(str(p.relative_to(src)) for p in src.rglob("*.png"))
    ref, keep, bad = decode.decode_images(Source(src), names, workers=1, skip_bad=True)
    tr = ds.split("train")
    assert len(tr) == 14 and keep.sum() == 14 and len(bad) == 1 and "b_2.png" in ds.info()["skipped"][0]
    np.testing.assert_array_equal(np.asarray(tr.images), ref)
    assert tr.labels.tolist() == [0] * 5 + [1] * 4 + [2] * 5 and "train/b/b_2.png" not in tr.files
    assert np.load(ds.path / "train.images.npy", mmap_mode="r").shape == (14, 24, 24, 3)
    w = NpyWriter(tmp_path / "x.npy", np.uint8)  # appended chunks, header written at the end
    for i in range(3):
        w.append(np.full((i + 1, 2, 2, 1), i, np.uint8))
    assert w.close() == (6, 2, 2, 1)
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), np.repeat(np.arange(3), [1, 2, 3]).reshape(6, 1, 1, 1)
                                  * np.ones((6, 2, 2, 1), np.uint8))
