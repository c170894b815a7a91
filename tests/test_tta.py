"""Test-time augmentation: the views against hand-made ones, and a run trained with flip-shift TTA
scored the same way by its final evaluation and by `eval`."""
import numpy as np
import pytest
import torch

import fixtures
from tinyvision.data import Dataset
from tinyvision.engine import fit, load_config
from tinyvision.errors import TinyVisionError
from tinyvision.evaluate import evaluate_run
from tinyvision.evaluate import metrics as M
from tinyvision.evaluate.inference import eval_transform, predict_batches
from tinyvision.runs import load_model
from tinyvision.tta import passes, resolve, shifted, views


def test_shift_moves_a_pixel_and_reflects_the_edge():
    x = torch.zeros(1, 1, 7, 7)
    x[0, 0, 3, 4] = 1.0  # two pixels from the edges: the reflected border rows do not copy it
    down_right = shifted(x, 1, 1)
    assert down_right[0, 0, 4, 5] == 1.0 and down_right.sum() == 1.0
    up_left = shifted(x, -1, -1)
    assert up_left[0, 0, 2, 3] == 1.0 and up_left.sum() == 1.0
    edge = torch.arange(25.0).view(1, 1, 5, 5)
    # moved down by one: the new top row is the reflection of row 1, not zeros
    assert torch.equal(shifted(edge, 1, 0)[0, 0, 0], edge[0, 0, 1]) and torch.equal(shifted(edge, 1, 0)[0, 0, 1:], edge[0, 0, :4])


def test_modes_views_and_weights():
    x = torch.randn(2, 3, 8, 8)
    assert resolve(True) == "flip" and resolve(False) is None and resolve("none") is None
    assert [passes(m) for m in (None, True, "flip", "flip-shift")] == [1, 2, 2, 6]
    with pytest.raises(TinyVisionError, match="flip-shift"):
        resolve("shift")
    vs = list(views(x, "flip-shift"))
    assert len(vs) == 6 and sum(w for w, _ in vs) == pytest.approx(1.0)
    assert torch.equal(vs[0][1], x) and torch.equal(vs[1][1], x.flip(3)) and vs[0][0] == 0.25


def test_config_takes_the_modes():
    assert load_config(None, ["train.tta=flip-shift"]).train.tta == "flip-shift"
    assert load_config(None, ["train.tta=true"]).train.tta is True
    with pytest.raises(TinyVisionError, match="did you mean flip"):
        load_config(None, ["train.tta=flips"])


def test_flip_shift_run_scores_as_its_eval(tmp_path):
    src = fixtures.idx_dataset(tmp_path / "src", n_train=96, n_test=40)
    s = fit(load_config(None, {
        "data.name": "fashion-mnist", "data.source": str(src), "data.cache_dir": str(tmp_path / "cache"),
        "model.name": "quicknet", "model.kwargs": {"widths": [8, 16], "stem": 8}, "train.epochs": 2,
        "train.batch_size": 16, "train.eval_batch_size": 40, "train.tta": "flip-shift", "output.dir": str(tmp_path / "run"),
        "output.quiet": True, "output.tensorboard": False, "augment.policy": "flip", "optim.lr": 0.05}))
    assert s["tta"] == "flip-shift"
    lm = load_model(tmp_path / "run", "last")
    assert lm.record.tta == "flip-shift"
    ds = Dataset.load(lm.record.cache)
    part = ds.split("test")
    x = eval_transform(lm.record, ds.image_size[0])(torch.from_numpy(np.array(part.images)).permute(0, 3, 1, 2))

    def moved(t, d):  # reflect-padded crop, written out here rather than taken from tinyvision.tta
        p = torch.nn.functional.pad(t, (1, 1, 1, 1), mode="reflect")
        return p[..., 1 - d:1 - d + t.shape[2], 1 - d:1 - d + t.shape[3]]

    by_hand = sum(w * (predict_batches(lm, [v]) + predict_batches(lm, [v.flip(3)])) / 2
                  for w, v in ((0.5, x), (0.25, moved(x, -1)), (0.25, moved(x, 1))))
    np.testing.assert_allclose(predict_batches(lm, [x], tta="flip-shift"), by_hand, rtol=1e-5, atol=1e-7)
    assert np.abs(predict_batches(lm, [x], tta="flip") - by_hand).max() > 1e-6  # the shifted views count
    res = evaluate_run(tmp_path / "run", "val", checkpoint="last", out_dir=tmp_path / "eval")  # the run's own TTA
    assert res["tta"] == "flip-shift" and res["top1"] == s["final"]["top1"]
    assert res["top1"] == M.topk_accuracy(by_hand, part.targets, 1)


def test_segmentation_refuses_shifted_tta_before_training(tmp_path):
    src = fixtures.camvid_tree(tmp_path / "camvid")
    cfg = load_config(None, {"data.name": "camvid", "data.source": str(src), "data.cache_dir": str(tmp_path / "cache"),
                             "model.name": "fcn-resnet18", "train.tta": "flip-shift", "output.dir": str(tmp_path / "run"),
                             "output.quiet": True, "output.tensorboard": False})
    with pytest.raises(TinyVisionError, match="train.tta 'flip-shift'.*segmentation"):
        fit(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()
