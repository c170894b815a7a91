"""eval / predict / export / compare: metrics against hand-computed cases, and the commands end to end."""
import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

import fixtures
from browser import CHROMIUM, check_page
from tinyvision.cli import main
from tinyvision.engine import fit, load_config
from tinyvision.errors import TinyVisionError
from tinyvision.evaluate import evaluate_run, export_run, predict_files
from tinyvision.evaluate import metrics as M
from tinyvision.evaluate.evaluation import class_mapping
from tinyvision.report.compare import compare_runs, overfit_epoch
from tinyvision.runs import load_model


# ------------------------------------------------------------------ metrics by hand
def test_report_hand_computed_with_absent_classes():
    # class 2 is never predicted, class 3 appears nowhere
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 0, 0])
    cm = M.confusion_matrix(y, p, 4)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [2, 0, 0, 0], [0, 0, 0, 0]]
    r = M.classification_report(cm, ["a", "b", "c", "d"])
    assert r["a"]["precision"] == pytest.approx(1 / 3) and r["a"]["recall"] == 0.5 and r["a"]["f1"] == pytest.approx(0.4)
    assert r["b"]["precision"] == pytest.approx(2 / 3) and r["b"]["recall"] == 1.0 and r["b"]["f1"] == pytest.approx(0.8)
    assert r["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert r["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert r["accuracy"] == 0.5
    assert r["macro avg"]["precision"] == pytest.approx(0.25) and r["macro avg"]["f1"] == pytest.approx(0.3)
    assert r["weighted avg"]["precision"] == pytest.approx(1 / 3) and r["weighted avg"]["recall"] == pytest.approx(0.5)
    assert r["weighted avg"]["f1"] == pytest.approx(0.4) and r["weighted avg"]["support"] == 6
    text = M.format_report(r, ["a", "b", "c", "d"])
    assert "macro avg" in text and "0.3000" in text
    pairs = M.most_confused(cm, ["a", "b", "c", "d"])
    assert pairs[0] == {"true": "c", "predicted": "a", "count": 2, "share": 1.0}
    assert len(pairs) == 2  # only the non-zero off-diagonal cells


def test_topk_nll_and_ece_by_hand():
    probs = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.3, 0.6, 0.1], [0.1, 0.3, 0.6]])
    y = np.array([0, 1, 1, 2])
    assert M.topk_accuracy(probs, y, 1) == 0.75
    assert M.topk_accuracy(probs, y, 2) == 1.0
    assert M.nll(probs, y) == pytest.approx(-(np.log(0.9) + np.log(0.05) + np.log(0.6) + np.log(0.6)) / 4)
    cal = M.calibration(probs, y, bins=10)
    # bin (0.8, 0.9]: 2 images, accuracy 0.5, confidence 0.9; bin (0.5, 0.6]: 2 images, accuracy 1, confidence 0.6
    assert cal["ece"] == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    assert sum(cal["count"]) == 4


def test_cluster_order_groups_confused_classes():
    # classes 0 and 3 confuse each other, as do 1 and 2
    cm = np.diag([50, 50, 50, 50]) + np.array([[0, 0, 0, 20], [0, 0, 20, 0], [0, 20, 0, 0], [20, 0, 0, 0]])
    order = list(M.cluster_order(cm))
    assert abs(order.index(0) - order.index(3)) == 1 and abs(order.index(1) - order.index(2)) == 1


def test_class_matching_by_id_not_position():
    assert class_mapping(["n1", "n2", "n3"], ["n3", "n1"], "x").tolist() == [2, 0]
    with pytest.raises(TinyVisionError, match="unknown to the model.*n9"):
        class_mapping(["n1", "n2"], ["n1", "n9"], "copy")


def test_overfit_mark():
    def ep(e, t, v):
        return {"epoch": e, "train_loss": t, "val_loss": v}

    assert overfit_epoch([ep(1, 1.0, 1.0), ep(2, 0.8, 0.7), ep(3, 0.6, 0.8), ep(4, 0.5, 0.9)]) == 2
    assert overfit_epoch([ep(1, 1.0, 1.0), ep(2, 0.8, 0.7), ep(3, 0.6, 0.6)]) is None
    assert overfit_epoch([ep(1, 1.0, 1.0), ep(2, 1.0, 0.7), ep(3, 1.1, 0.8)]) is None  # train loss not falling
    assert overfit_epoch([]) is None


# ------------------------------------------------------------------ a trained run to evaluate
def _train(src, out, dataset="fashion-mnist", model_kw=None, epochs=2, model="quicknet", **over):
    cfg = load_config(None, {
        "data.name": dataset, "data.source": str(src), "model.name": model,
        "model.kwargs": {"widths": [8, 16], "stem": 8} if model_kw is None and model == "quicknet" else model_kw or {}, "train.epochs": epochs, "train.batch_size": 16,
        "train.eval_batch_size": 32, "output.dir": str(out), "output.quiet": True, "output.tensorboard": False,
        "augment.policy": "flip", "optim.lr": 0.05, **over})
    return fit(cfg)


@pytest.fixture(scope="module")
def fm_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fm")
    src = fixtures.idx_dataset(tmp / "src", n_train=96, n_test=40)
    summary = _train(src, tmp / "run", **{"data.cache_dir": str(tmp / "cache")})
    return tmp / "run", src, summary


def test_eval_writes_every_file_and_matches_summary(fm_run, capsys):
    run, src, summary = fm_run
    assert main(["eval", str(run), "--split", "val", "--checkpoint", "last", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert {"top1", "top5", "loss", "n"} <= set(res)
    assert res["n"] == 40 and res["split"] == "test"
    assert res["top1"] == summary["final"]["top1"] and res["top5"] == summary["final"]["top5"]
    assert res["loss"] == pytest.approx(summary["final"]["loss"], rel=1e-3)
    out = run / "eval" / "test"
    for f in ("metrics.json", "classification_report.txt", "classification_report.json", "confusion_matrix.csv",
              "confusion_matrix.png", "most_confused.csv", "reliability.png", "success_gallery.png",
              "failure_gallery.png", "predictions.csv"):
        assert (out / f).exists(), f
    rows = list(csv.reader(open(out / "confusion_matrix.csv")))
    assert rows[0][1] == "T-shirt/top" and sum(int(v) for r in rows[1:] for v in r[1:]) == 40
    for png in ("confusion_matrix.png", "reliability.png", "success_gallery.png"):
        assert Image.open(out / png).size[0] > 200
    rep = json.loads((out / "classification_report.json").read_text())
    assert rep["accuracy"] == pytest.approx(res["top1"])


def test_eval_tta_and_best(fm_run):
    import torch

    from tinyvision.data import Dataset
    from tinyvision.evaluate.inference import eval_transform, predict_batches

    run, _, summary = fm_run
    # --checkpoint best loads best.pt: the best epoch's weights, which score the best epoch's top-1
    best = evaluate_run(run, "val", checkpoint="best", out_dir=run / "eval-best")
    assert best["checkpoint"].endswith("best.pt") and best["epoch"] == summary["best"]["epoch"]
    assert best["top1"] == summary["best"]["top1"]
    # flip TTA averages the probabilities of each image and of its mirror image
    lm = load_model(run, "best")
    ds = Dataset.load(lm.record.cache)
    part = ds.split("test")
    x = eval_transform(lm.record, ds.image_size[0])(torch.from_numpy(np.array(part.images)).permute(0, 3, 1, 2))
    plain, mirrored = predict_batches(lm, [x]), predict_batches(lm, [x.flip(3)])
    both = predict_batches(lm, [x], tta="flip")
    np.testing.assert_allclose(both, (plain + mirrored) / 2, rtol=1e-6, atol=0)
    assert np.abs(mirrored - plain).max() > 1e-6  # the mirror images do change the answer (a little, this early)
    res = evaluate_run(run, "val", checkpoint="best", tta="flip", out_dir=run / "eval-tta")
    assert res["tta"] == "flip" and res["n"] == len(part)
    assert res["top1"] == M.topk_accuracy(both, part.targets, 1)


def test_eval_other_copy_matches_classes_by_id(tmp_path):
    src = fixtures.tiny_imagenet_tree(tmp_path / "a", n_train=6, n_val=3, size=32)
    _train(src, tmp_path / "run", dataset="tiny-imagenet", epochs=1)
    base = evaluate_run(tmp_path / "run", "val", checkpoint="last")
    # the same images, classes listed in reverse order in wnids.txt: matched by wnid, same result
    copy = tmp_path / "b" / src.name
    shutil.copytree(src, copy)
    wn = (copy / "wnids.txt").read_text().split()
    (copy / "wnids.txt").write_text("\n".join(reversed(wn)) + "\n")
    other = evaluate_run(tmp_path / "run", "val", source=str(copy), checkpoint="last", out_dir=tmp_path / "e2")
    assert other["top1"] == base["top1"] and other["n"] == base["n"]
    # a copy with a class the model never saw: a clear error
    bad = tmp_path / "c" / src.name
    shutil.copytree(src, bad)
    (bad / "wnids.txt").write_text((bad / "wnids.txt").read_text().replace(wn[0], "n99999999"))
    ann = bad / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text().replace(wn[0], "n99999999"))
    (bad / "train" / wn[0]).rename(bad / "train" / "n99999999")
    with pytest.raises(TinyVisionError, match="n99999999"):
        evaluate_run(tmp_path / "run", "val", source=str(bad), out_dir=tmp_path / "e3")
    # the unlabeled test split: predictions, no accuracy
    res = evaluate_run(tmp_path / "run", "test", checkpoint="last")
    assert "top1" not in res and res["files"] == ["predictions.csv"]
    rows = list(csv.DictReader(open(tmp_path / "run" / "eval" / "test" / "predictions.csv")))
    assert len(rows) == res["n"] and rows[0]["top1_id"] in wn


def test_predict_any_image_and_bad_files(fm_run, tmp_path, capsys):
    run, _, _ = fm_run
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    img.save(tmp_path / "a.jpg", quality=95)
    Image.open(tmp_path / "a.jpg").save(tmp_path / "a.png")  # lossless copy of the decoded JPEG
    Image.fromarray(rng.integers(0, 256, (30, 30, 4), dtype=np.uint8), "RGBA").save(tmp_path / "b.png")
    Image.fromarray(rng.integers(0, 256, (30, 30, 4), dtype=np.uint8), "CMYK").save(tmp_path / "c.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    lm = load_model(run, "best")
    probs, ok, bad = predict_files(lm, [tmp_path / "a.jpg", tmp_path / "a.png", tmp_path / "b.png",
                                        tmp_path / "c.jpg", tmp_path / "broken.jpg"])
    assert len(ok) == 4 and list(bad) == [tmp_path / "broken.jpg"]
    assert probs.argmax(1)[0] == probs.argmax(1)[1]
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-4)
    code = main(["predict", str(run), str(tmp_path / "a.jpg"), str(tmp_path / "broken.jpg"), "--topk", "3", "--json"])
    captured = capsys.readouterr()
    assert code != 0 and "broken.jpg" in captured.err
    out = json.loads(captured.out)
    assert len(out) == 1 and len(out[0]["top"]) == 3 and {"id", "name", "prob"} <= set(out[0]["top"][0])


def test_onnx_export_matches_pytorch(fm_run, tmp_path, capsys):
    import onnxruntime as ort

    run, _, _ = fm_run
    res = export_run(run, "onnx", tmp_path / "m.onnx")
    assert res["max_abs_diff"] <= 1e-4
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for n in (1, 5):  # dynamic batch
        x = np.random.default_rng(n).standard_normal((n, 1, 28, 28)).astype(np.float32)
        assert sess.run(None, {"input": x})[0].shape == (n, 10)
    assert main(["export", str(run), "--format", "torchscript", "--out", str(tmp_path / "m.pt")]) == 0
    import torch

    ts = torch.jit.load(str(tmp_path / "m.pt"))
    assert ts(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    meta = json.loads((tmp_path / "m.pt.json").read_text())
    assert meta["class_names"][0] == "T-shirt/top"


def test_compare_report(fm_run, tmp_path):
    run, src, _ = fm_run
    other = tmp_path / "wide"
    _train(src, other, model_kw={"widths": [16, 32], "stem": 8}, epochs=3)
    third = tmp_path / "seed001"
    _train(src, third, model_kw={"widths": [8], "stem": 8}, epochs=1)
    res = compare_runs([run, other, third], tmp_path / "rep" / "report.html")
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5 and len(res["images"]) == 5  # 4 curves + bars
    assert all(Image.open(p).size[0] > 300 for p in res["images"])
    for r in (run, other, third):
        assert r.name in page
    assert "training accuracy per epoch" in page or any("train_top1" in p for p in res["images"])
    # a run in progress (no summary yet) still shows
    (other / "summary.json").unlink()
    compare_runs([run, other], tmp_path / "rep2.html")
    assert "in progress" in (tmp_path / "rep2.html").read_text()
    # the page reads run dirs only: MACs come from the run record, no model is rebuilt
    from tinyvision.models import create_model, summarize
    from tinyvision.runs import read_record

    rec = read_record(other)
    model = create_model("quicknet", num_classes=10, in_chans=1, widths=[16, 32], stem=8)
    assert (rec.macs, rec.params) == (summarize(model, 28, 1)["macs"], summarize(model, 28, 1)["params"])
    shutil.rmtree(other / "checkpoints")
    compare_runs([other], tmp_path / "rep3.html")
    assert f"{rec.macs / 1e6:,.1f} M" in (tmp_path / "rep3.html").read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_compare_page_in_headless_chromium(fm_run, tmp_path):
    run, src, _ = fm_run
    runs = [run]
    for model in ("mobilenetv2", "resnet18"):  # three different architectures
        runs.append(tmp_path / model)
        _train(src, runs[-1], model=model, epochs=2)
    html = compare_runs(runs, tmp_path / "report.html")["html"]
    check_page(html, tmp_path, expect_images=5)


def test_bad_input_errors_name_the_file(fm_run, tmp_path, capsys):
    run, _, _ = fm_run
    assert main(["eval", str(tmp_path / "nope")]) == 2
    assert "no such run dir" in capsys.readouterr().err
    (tmp_path / "plain").mkdir()
    assert main(["eval", str(tmp_path / "plain")]) == 2
    assert "not a tinyvision run dir" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / "checkpoints" / "best.pt").write_bytes(b"\x00garbage")
    assert main(["eval", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "best.pt" in err and "not a readable tinyvision checkpoint" in err
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "m.onnx"), "--checkpoint",
                 str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err and not (tmp_path / "m.onnx").exists()
    assert main(["eval", str(run), "--split", "holdout"]) == 2
    assert "did not hold out" in capsys.readouterr().err
    assert main(["predict", str(run), str(tmp_path / "plain")]) == 2  # a folder without images
    assert "no image files" in capsys.readouterr().err
