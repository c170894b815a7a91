import json
import subprocess
import sys

import numpy as np
from PIL import Image

import fixtures
from tinyvision.cli import main


def test_data_info_json(tiny_zip, capsys):
    assert main(["data", "info", "tiny-imagenet", "--source", str(tiny_zip), "--json", "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_classes"] == 3
    assert info["splits"] == {"train": 12, "val": 6, "test": 2}
    assert info["image_size"] == [64, 64] and info["channels"] == 3
    assert len(info["mean"]) == 3 and len(info["std"]) == 3
    assert info["class_names"][2] == "bullfrog"


def test_data_prepare_with_cache_dir_and_size(tmp_path, capsys):
    src = fixtures.idx_dataset(tmp_path / "fm")
    cache = tmp_path / "c"
    assert main(["data", "prepare", "fashion-mnist", "--source", str(src), "--image-size", "32",
                 "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert str(cache) in out and '"train": 20' in out
    assert main(["data", "info", "fashion-mnist", "--source", str(src), "--image-size", "32",
                 "--cache-dir", str(cache), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["image_size"] == [32, 32]


def test_data_preview_png(tmp_path, tiny_tree, capsys):
    out = tmp_path / "grid.png"
    assert main(["data", "preview", "tiny-imagenet", "--source", str(tiny_tree), "--out", str(out),
                 "--augment", "seed002", "-n", "4", "--quiet"]) == 0
    img = Image.open(out)
    assert img.size[0] > 300 and np.asarray(img.convert("L")).std() > 10  # not blank


def test_console_entry_points(tmp_path):
    src = fixtures.idx_dataset(tmp_path / "m")
    r = subprocess.run([sys.executable, "-m", "tinyvision", "data", "info", "mnist", "--source", str(src), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["splits"] == {"train": 20, "test": 10}
    r = subprocess.run(["tinyvision", "data", "info", "mnist", "--source", str(tmp_path / "missing")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "missing: no such file or folder" in r.stderr
