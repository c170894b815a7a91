"""On the real data, where present (CI has it): the figures the issue asks to show."""
import json

import pytest

from conftest import FASHION_DIR, TINY_ZIP
from tinyvision.cli import main

pytestmark = pytest.mark.realdata


@pytest.mark.skipif(not TINY_ZIP.exists(), reason="needs ../shared/datasets/tiny-imagenet-200-dev.zip")
def test_tiny_imagenet_dev_zip(real_cache_dir, capsys):
    assert main(["data", "info", "tiny-imagenet", "--source", str(TINY_ZIP), "--cache-dir", real_cache_dir,
                 "--json", "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_classes"] == 200
    assert info["splits"] == {"train": 100000, "val": 1000, "test": 1000}
    assert info["image_size"] == [64, 64] and info["channels"] == 3
    # seed report 000: mean [0.4802, 0.4481, 0.3975]
    assert [round(m, 4) for m in info["mean"]] == [0.4802, 0.4481, 0.3975]
    assert "goldfish" in info["class_names"]


@pytest.mark.skipif(not FASHION_DIR.exists(), reason="needs apt-get install dataset-fashion-mnist")
def test_fashion_mnist_debian(real_cache_dir, capsys):
    assert main(["data", "info", "fashion-mnist", "--cache-dir", real_cache_dir, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["splits"] == {"train": 60000, "test": 10000}
    assert info["num_classes"] == 10 and info["class_names"][9] == "Ankle boot"
    assert info["image_size"] == [28, 28] and info["channels"] == 1


@pytest.mark.skipif(not FASHION_DIR.exists(), reason="needs apt-get install dataset-fashion-mnist")
def test_demo_on_real_fashion_mnist_learns(tmp_path, real_cache_dir, capsys):
    """The main job's recipe on a 3,000-image stratified subset, one epoch: well above chance."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quiet", "--set", "data.limit_train=3000", "--set", "train.epochs=2",
                 "--set", f"data.cache_dir={real_cache_dir}"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert f"run dir: {out}" in printed and "test top-1" in printed
    assert summary["val_split"] == "test" and summary["final"]["n"] == 10000
    assert summary["final"]["top1"] > 0.6
