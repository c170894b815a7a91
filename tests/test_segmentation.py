"""Semantic segmentation: readers (VOC, CamVid, image/mask folders) into the cache, joint image/mask
augmentation, FCN training with the engine, eval (mIoU, Dice, galleries), predict's colour masks,
and each bad input named."""
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import fixtures
from tinyvision.data import prepare
from tinyvision.data.augment import build_augment
from tinyvision.engine import fit, load_config
from tinyvision.errors import TinyVisionError
from tinyvision.metrics import confusion, iou_from_confusion


def test_camvid_cache_pairs_images_and_masks(tmp_path):
    src = fixtures.camvid_tree(tmp_path)
    ds = prepare("camvid", src, progress=False)
    assert ds.task == "segmentation" and ds.ignore_index == 255 and ds.num_classes == 11
    assert ds.class_names[:3] == ["Sky", "Building", "Pole"] and ds.meta["splits"] == {"train": 4, "val": 2, "test": 2}
    tr = ds.split("train")
    assert tr.masks.shape == (4, 24, 32) and tr.images.shape == (4, 24, 32, 3)
    raw = np.asarray(Image.open(src / "trainannot" / "0001TP_000000.png"))
    assert (np.asarray(tr.masks[0])[raw == 11] == 255).all()  # void becomes ignore
    assert np.array_equal(np.asarray(tr.masks[0])[raw != 11], raw[raw != 11])
    small = prepare("camvid", src, image_size=[12, 16], progress=False)  # height x width, masks by nearest
    assert small.split("val").masks.shape == (2, 12, 16) and set(np.unique(small.split("val").masks)) <= {0, 1, 2, 255}


def test_voc_palette_masks_and_folder_pairs(tmp_path):
    ds = prepare("voc", fixtures.voc_tree(tmp_path / "voc"), progress=False)
    assert ds.num_classes == 21 and ds.class_names[15] == "person" and ds.meta["splits"] == {"train": 3, "val": 2}
    m = np.asarray(ds.split("train").masks[0])
    assert (m[:, 0] == 255).all() and set(np.unique(m)) == {0, 1, 2, 255}
    root = tmp_path / "pairs"
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True), (root / split / "masks").mkdir(parents=True)
        for i in range(2):
            img, mask = fixtures._seg_pair(np.random.default_rng(i), 16, 16, 3)
            Image.fromarray(img).save(root / split / "images" / f"a{i}.jpg")
            Image.fromarray(mask, "L").save(root / split / "masks" / f"a{i}.png")
    (root / "classes.txt").write_text("sky\nroad\ncar\n")
    f = prepare("seg-folder", root, progress=False)
    assert f.class_names == ["sky", "road", "car"] and f.split("val").masks.shape == (2, 16, 16)


@pytest.mark.parametrize("case", ["size", "values", "no-palette", "missing"])
def test_bad_segmentation_input_names_the_file(tmp_path, case):
    if case == "missing":
        src = fixtures.voc_tree(tmp_path / "voc")
        (src / "JPEGImages" / "2007_000001.jpg").unlink()
        with pytest.raises(TinyVisionError, match=r"train.txt: lists '2007_000001', whose image .*2007_000001.jpg is missing"):
            prepare("voc", src, progress=False)
        return
    if case == "no-palette":
        src = fixtures.voc_tree(tmp_path / "voc")
        bad = src / "SegmentationClass" / "2007_000002.png"
        Image.fromarray(np.asarray(Image.open(bad)).astype(np.uint8), "L").save(bad)
        with pytest.raises(TinyVisionError, match=r"2007_000002.png: not a palette PNG"):
            prepare("voc", src, progress=False)
        return
    src = fixtures.camvid_tree(tmp_path)
    bad = src / "trainannot" / "0001TP_000001.png"
    if case == "size":
        Image.fromarray(np.zeros((10, 10), np.uint8), "L").save(bad)
        match = r"0001TP_000001.png: mask is 10x10, its image 32x24"
    else:
        Image.fromarray(np.full((24, 32), 40, np.uint8), "L").save(bad)
        match = r"0001TP_000001.png: values \[40\] outside the 11 classes"
    with pytest.raises(TinyVisionError, match=match):
        prepare("camvid", src, progress=False)
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "cache").rglob("*")) if (tmp_path / "cache").exists() else True


def test_masks_move_with_their_images():
    x = torch.zeros(32, 3, 16, 16, dtype=torch.uint8)
    m = torch.zeros(32, 16, 16, dtype=torch.long)
    m[:, :, 8:], x[:, :, :, :8], x[:, :, :, 8:] = 1, 100, 200
    y, mm = build_augment("flip,crop:padding=4,rotate:degrees=20,brightness", (0,) * 3, (1,) * 3, 16)(
        x, torch.Generator().manual_seed(0), m)
    assert set(mm.unique().tolist()) == {0, 1, 255}  # shifted in from outside: ignore
    v = y[:, 2]  # the image moved exactly as the mask did (brightness changes values, not places)
    assert ((mm == 0) & (v > 0.5)).sum() == 0 and ((mm == 1) & (v < 0.3)).sum() == 0 and ((mm == 255) & (v > 0)).sum() == 0


def test_iou_by_hand():
    y = torch.tensor([[0, 0, 1, 1, 255]])
    p = torch.tensor([[0, 1, 1, 1, 0]])
    m = iou_from_confusion(confusion(p, y, 3, 255))
    assert m["iou"][0] == pytest.approx(1 / 2) and m["iou"][1] == pytest.approx(2 / 3)
    assert np.isnan(m["iou"][2]) and m["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["pixel_acc"] == pytest.approx(3 / 4) and m["dice"] == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_fcn_trains_evaluates_and_predicts(tmp_path, capsys):
    from tinyvision.cli import main
    from tinyvision.evaluate import evaluate_run

    src = fixtures.camvid_tree(tmp_path, counts=(8, 4, 2), size=(32, 32))
    out = tmp_path / "run"
    cfg = load_config(None, {"data.name": "camvid", "data.source": str(src), "model.name": "fcn-resnet18",
                             "train.epochs": 2, "train.batch_size": 4, "train.eval_batch_size": 4, "optim.lr": 0.02,
                             "augment.policy": "flip,crop:padding=2", "output.dir": str(out), "output.quiet": True,
                             "output.tensorboard": False, "train.checkpoint_every": 1})
    s = fit(cfg)
    assert s["monitor"] == "miou" and {"miou", "pixel_acc", "dice", "loss"} <= set(s["final"]) and s["val_split"] == "val"
    res = evaluate_run(out, "val", checkpoint="last")
    assert res["miou"] == pytest.approx(s["final"]["miou"], abs=1e-9)  # eval reproduces the run's own mIoU
    assert res["pixel_acc"] == pytest.approx(s["final"]["pixel_acc"], abs=1e-9)
    for f in ("metrics.json", "per_class.csv", "confusion_matrix.csv", "confusion_matrix.png", "best_overlays.png",
              "worst_overlays.png"):
        assert (out / "eval" / "val" / f).exists(), f
    from tinyvision.data.readers.segmentation import CAMVID_CLASSES

    assert list(json.loads((out / "eval" / "val" / "metrics.json").read_text())["per_class"]) == CAMVID_CLASSES
    from tinyvision.report import compare_runs

    page = compare_runs([out], tmp_path / "cmp.html")
    assert any("val_miou" in p for p in page["images"])
    assert main(["predict", str(out), str(src / "test"), "--out", str(tmp_path / "masks")]) == 0
    written = sorted((tmp_path / "masks").glob("*.png"))
    assert [p.name for p in written] == ["0001TP_000000_mask.png", "0001TP_000001_mask.png"]
    assert Image.open(written[0]).size == (32, 32) and Image.open(written[0]).mode == "RGB"
    with pytest.raises(TinyVisionError, match="segmentation model and fashion-mnist"):
        fit(load_config(None, {"data.name": "fashion-mnist", "data.source": str(fixtures.idx_dataset(tmp_path / "fm")),
                               "model.name": "fcn-resnet18", "output.dir": str(tmp_path / "x"), "augment.size": 32}))


def test_segmentation_run_resumes_exactly(tmp_path):
    from tinyvision.engine import FitHooks, Interrupted

    src = fixtures.camvid_tree(tmp_path, counts=(8, 2, 1), size=(32, 32))

    def cfg(out):
        return load_config(None, {"data.name": "camvid", "data.source": str(src), "model.name": "fcn-resnet18",
                                  "train.epochs": 2, "train.batch_size": 4, "optim.lr": 0.02, "optim.ema": 0.9,
                                  "augment.policy": "flip,crop:padding=2", "output.dir": str(out), "output.quiet": True,
                                  "output.tensorboard": False})
    ref = fit(cfg(tmp_path / "ref"))
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] == 3  # mid-epoch 2 (2 steps per epoch)
    with pytest.raises(Interrupted):
        fit(cfg(tmp_path / "run"), hooks=FitHooks(should_stop=stop))
    res = fit(cfg(tmp_path / "run"), resume=True)
    a = torch.load(tmp_path / "ref" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert res["final"] == ref["final"]
