import numpy as np
import pytest

import fixtures
from tinyvision.data import prepare
from tinyvision.data.archive import Source
from tinyvision.data.readers.idx import FASHION_CLASSES
from tinyvision.errors import TinyVisionError


def test_tiny_imagenet_folder(tiny_tree):
    ds = prepare("tiny-imagenet", tiny_tree, progress=False)
    assert ds.num_classes == 3
    assert ds.meta["splits"] == {"train": 12, "val": 6, "test": 2}
    assert ds.image_size == (64, 64) and ds.channels == 3
    assert ds.class_ids == fixtures.WNIDS
    assert ds.class_names[0] == "goldfish"  # first synonym from words.txt
    train = ds.split("train")
    assert train.images.dtype == np.uint8 and train.images.shape == (12, 64, 64, 3)
    # the grayscale JPEG became RGB with equal channels
    gray = train.files.index("train/n01443537/images/n01443537_0.JPEG")
    img = np.asarray(train.images[gray]).astype(int)
    assert np.abs(img[..., 0] - img[..., 1]).max() <= 1
    assert list(train.labels) == [0] * 4 + [1] * 4 + [2] * 4
    assert list(train.boxes[1]) == [1, 2, 41, 51]  # kept from <wnid>_boxes.txt
    val = ds.split("val")
    assert list(val.labels) == [0, 1, 2, 0, 1, 2]  # from val_annotations.txt, not by position
    assert list(val.boxes[3]) == [3, 2, 60, 61]
    test = ds.split("test")
    assert (test.labels == -1).all() and not test.labeled
    assert all(".DS_Store" not in f for f in train.files)


def test_tiny_imagenet_zip_equals_folder(tiny_tree, tiny_zip, tmp_path):
    a = prepare("tiny-imagenet", tiny_tree, progress=False)
    b = prepare("tiny-imagenet", tiny_zip, progress=False)
    assert a.path != b.path
    for s in ("train", "val", "test"):
        assert np.array_equal(a.split(s).images, b.split(s).images)
        assert np.array_equal(a.split(s).labels, b.split(s).labels)
        assert a.split(s).files == b.split(s).files


def test_tiny_imagenet_resize_scales_boxes(tiny_tree):
    ds = prepare("tiny-imagenet", tiny_tree, image_size=32, progress=False)
    assert ds.image_size == (32, 32)
    assert list(ds.split("val").boxes[3]) == [2, 1, 30, 30]  # [3, 2, 60, 61] / 2, rounded half to even


@pytest.mark.parametrize("gz", [True, False])
def test_idx_fashion_mnist(tmp_path, gz):
    src = fixtures.idx_dataset(tmp_path / "fm", gz=gz)
    ds = prepare("fashion-mnist", src, progress=False)
    assert ds.meta["splits"] == {"train": 20, "test": 10}
    assert ds.channels == 1 and ds.image_size == (28, 28)
    assert ds.class_names == FASHION_CLASSES
    assert ds.val_split == "test"
    assert list(ds.split("train").labels[:12]) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert int(ds.split("train").images[3].min()) >= 75  # label 3 -> pixel values 75..79


def test_mnist_resize(tmp_path):
    ds = prepare("mnist", fixtures.idx_dataset(tmp_path / "m"), image_size=32, progress=False)
    assert ds.image_size == (32, 32) and ds.class_names[3] == "3"


@pytest.mark.parametrize("tar", [False, True])
def test_cifar10(tmp_path, tar):
    src = fixtures.cifar10(tmp_path, tar=tar)
    ds = prepare("cifar10", src, progress=False)
    assert ds.meta["splits"] == {"train": 30, "test": 6}
    assert ds.class_names[0] == "airplane" and ds.image_size == (32, 32)
    # channel-first rows become HWC: pixel (0, 0) channels are data[0], data[1024], data[2048]
    import pickle
    folder = tmp_path / "cifar-10-batches-py"
    raw = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="bytes")[b"data"]
    img = ds.split("train").images[0]
    assert list(img[0, 0]) == [raw[0, 0], raw[0, 1024], raw[0, 2048]]
    assert list(img[0, 1]) == [raw[0, 1], raw[0, 1025], raw[0, 2049]]


def test_cifar100_fine_and_coarse(tmp_path):
    ds = prepare("cifar100", fixtures.cifar100(tmp_path), progress=False)
    assert ds.num_classes == 100
    info = ds.info()
    assert len(info["coarse_class_names"]) == 20
    assert info["fine_to_coarse"][7] == 1


def test_folder_with_splits(tmp_path):
    src = fixtures.folder_tree(tmp_path / "f", classes=("cat", "dog", "emu"), splits=("train", "val", "test"))
    ds = prepare("folder", src, progress=False)
    assert ds.class_ids == ["cat", "dog", "emu"]
    assert ds.meta["splits"] == {"train": 9, "val": 9, "test": 9}
    assert ds.val_split == "val"


def test_flat_folder_is_train(tmp_path):
    src = fixtures.flat_folder_tree(tmp_path / "flat")
    ds = prepare("folder", src, progress=False)
    assert ds.meta["splits"] == {"train": 6} and ds.class_ids == ["cat", "dog"]


def test_source_lists_members_without_junk(tiny_zip):
    s = Source(tiny_zip)
    assert s.kind == "zip"
    assert not any(n.endswith(".DS_Store") for n in s.names())
    assert s.find("wnids.txt") == "tiny-imagenet-200/wnids.txt"


@pytest.mark.parametrize("devkit", [False, True], ids=["LOC_val_solution.csv", "devkit ground truth + meta.mat"])
def test_ilsvrc2012_layout(tmp_path, devkit):
    if devkit:
        pytest.importorskip("scipy")
    src = fixtures.ilsvrc_tree(tmp_path / "ILSVRC", devkit=devkit)
    ds = prepare("imagenet", src, image_size=16, progress=False)
    assert ds.class_ids == fixtures.IMAGENET_WNIDS and ds.class_names == ["tench", "goldfish", "great white shark"]
    assert ds.meta["splits"] == {"train": 9, "val": 6, "test": 1} and ds.image_size == (16, 16)
    val = ds.split("val")
    truth = [fixtures.IMAGENET_WNIDS[i % 3] for i in range(6)][::-1]  # as the fixture labelled them
    assert [ds.class_ids[l] for l in val.labels] == truth
    means = np.asarray(val.images, dtype=np.float64).mean((1, 2, 3))  # each val image is its class's grey
    assert np.allclose(means, [60 * fixtures.IMAGENET_WNIDS.index(w) for w in truth], atol=2)
    assert not ds.split("test").labeled and ds.val_split == "val"


def test_ilsvrc2012_missing_labels_say_what_to_add(tmp_path):
    src = fixtures.ilsvrc_tree(tmp_path / "ILSVRC")
    (src / "LOC_val_solution.csv").unlink()
    with pytest.raises(TinyVisionError, match="no labels: put LOC_val_solution.csv"):
        prepare("imagenet", src, image_size=16, progress=False)


def test_downsampled_imagenet_npz(tmp_path):
    src = fixtures.downsampled_imagenet(tmp_path / "Imagenet8", side=8)
    ds = prepare("imagenet-downsampled", src, progress=False)
    assert ds.num_classes == 1000 and ds.class_ids[:2] == ["n02119789", "n02100735"] and ds.class_ids[2] == "3"
    assert ds.class_names[0] == "kit fox" and ds.image_size == (8, 8) and ds.meta["splits"] == {"train": 10, "val": 4}
    z = np.load(src / "train_data_batch_2.npz")
    tr = ds.split("train")
    np.testing.assert_array_equal(np.asarray(tr.images[5:]), z["data"].reshape(-1, 3, 8, 8).transpose(0, 2, 3, 1))
    assert tr.labels[5:].tolist() == [l - 1 for l in z["labels"]]  # 1-based in the files
    assert ds.split("val").labels.tolist() == [0, 1, 2, 999]
