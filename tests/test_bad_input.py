"""Every bad input gets a message naming the file and the problem, and leaves no cache."""
import gzip
import zipfile
from pathlib import Path

import pytest

import fixtures
from tinyvision.cli import main
from tinyvision.data import prepare
from tinyvision.data.cache import cache_root
from tinyvision.data.download import download
from tinyvision.errors import TinyVisionError


def no_cache_left(name):
    d = cache_root() / name
    return not d.exists() or not any(d.iterdir())


def test_truncated_jpeg(tiny_tree):
    bad = tiny_tree / "train" / fixtures.WNIDS[1] / "images" / f"{fixtures.WNIDS[1]}_2.JPEG"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(TinyVisionError, match=rf"{bad.name}.*not a readable image"):
        prepare("tiny-imagenet", tiny_tree, progress=False)
    assert no_cache_left("tiny-imagenet")


def test_skip_bad_lists_skipped(tiny_tree, capsys):
    bad = tiny_tree / "train" / fixtures.WNIDS[1] / "images" / f"{fixtures.WNIDS[1]}_2.JPEG"
    bad.write_bytes(b"this is not an image")
    rc = main(["data", "prepare", "tiny-imagenet", "--source", str(tiny_tree), "--skip-bad", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and bad.name in out
    ds = prepare("tiny-imagenet", tiny_tree, progress=False)
    assert ds.meta["splits"]["train"] == 11
    assert len(ds.meta["skipped"]) == 1 and bad.name in ds.meta["skipped"][0]
    assert all(bad.name not in f for f in ds.split("train").files)


def test_val_annotation_unknown_class(tiny_tree):
    ann = tiny_tree / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text().replace(fixtures.WNIDS[2], "n99999999", 1))
    with pytest.raises(TinyVisionError, match=r"val_annotations.txt.*n99999999.*absent from"):
        prepare("tiny-imagenet", tiny_tree, progress=False)
    assert no_cache_left("tiny-imagenet")


def test_missing_annotation_file(tiny_tree):
    (tiny_tree / "val" / "val_annotations.txt").unlink()
    with pytest.raises(TinyVisionError, match=r"val_annotations.txt: missing"):
        prepare("tiny-imagenet", tiny_tree, progress=False)


def test_empty_class_folder_tiny(tiny_tree):
    d = tiny_tree / "train" / fixtures.WNIDS[0] / "images"
    for p in d.iterdir():
        p.unlink()
    with pytest.raises(TinyVisionError, match=rf"{fixtures.WNIDS[0]}/images: empty or missing class folder"):
        prepare("tiny-imagenet", tiny_tree, progress=False)


def test_empty_class_folder_generic(tmp_path):
    src = fixtures.folder_tree(tmp_path / "f")
    (src / "train" / "empty").mkdir()
    with pytest.raises(TinyVisionError, match=r"train/empty: empty class folder"):
        prepare("folder", src, progress=False)
    assert no_cache_left("folder")


def test_idx_wrong_magic(tmp_path):
    src = fixtures.idx_dataset(tmp_path / "fm")
    f = src / "train-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(f.read_bytes()))
    data[3] = 0x03
    f.write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(TinyVisionError, match=r"train-labels-idx1-ubyte.gz: wrong IDX magic number 0x00000803"):
        prepare("fashion-mnist", src, progress=False)
    assert no_cache_left("fashion-mnist")


def test_idx_truncated(tmp_path):
    src = fixtures.idx_dataset(tmp_path / "fm", gz=False)
    f = src / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-5])
    with pytest.raises(TinyVisionError, match=r"t10k-images-idx3-ubyte: header says"):
        prepare("fashion-mnist", src, progress=False)


def test_zip_slip_refused(tmp_path, tiny_zip):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(tiny_zip) as src, zipfile.ZipFile(evil, "w") as dst:
        for i in src.infolist():
            dst.writestr(i, src.read(i))
        dst.writestr("../../outside.txt", b"x")
    with pytest.raises(TinyVisionError, match=r"evil.zip: refusing archive entry '../../outside.txt'"):
        prepare("tiny-imagenet", evil, progress=False)
    assert not (tmp_path.parent / "outside.txt").exists()


def test_cifar_pickle_with_code_refused(tmp_path):
    import os
    import pickle

    src = fixtures.cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (src / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(TinyVisionError, match=r"test_batch: not a CIFAR python batch.*refusing to load"):
        prepare("cifar10", src, progress=False)


def test_download_checksum_mismatch_deleted(tmp_path):
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"some bytes")
    dest = tmp_path / "dl" / "file.bin"
    with pytest.raises(TinyVisionError, match=r"checksum mismatch.*deleted"):
        download(payload.as_uri(), dest, md5="0" * 32)
    assert not dest.exists() and not any(dest.parent.iterdir())
    import hashlib
    good = download(payload.as_uri(), dest, md5=hashlib.md5(b"some bytes").hexdigest())
    assert good.read_bytes() == b"some bytes"


def test_missing_source_says_where(monkeypatch, tmp_path):
    # no network in tests: point the published URL at a file that does not exist
    from tinyvision.data import sources

    spec = sources.DATASETS["cifar10"]
    monkeypatch.setitem(sources.DATASETS, "cifar10", spec.__class__(
        **{**spec.__dict__, "resources": ((Path(tmp_path / "nothing.tar.gz").as_uri(), "cifar-10-python.tar.gz", "0" * 32),)}))
    with pytest.raises(TinyVisionError, match=r"not found.*Put cifar-10-python.tar.gz.*downloads/cifar10"):
        prepare("cifar10", None, progress=False)


def test_cli_exit_code_and_message(tmp_path, capsys):
    rc = main(["data", "info", "folder", "--source", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert rc == 2 and "nope: no such file or folder" in err


def test_mixed_sizes_need_image_size(tmp_path):
    from PIL import Image
    import numpy as np

    src = fixtures.flat_folder_tree(tmp_path / "f")
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(src / "cat" / "odd.png")
    with pytest.raises(TinyVisionError, match=r"images differ in size.*--image-size"):
        prepare("folder", src, progress=False)
    ds = prepare("folder", src, image_size=16, progress=False)
    assert ds.image_size == (16, 16)
