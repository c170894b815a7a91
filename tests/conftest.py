import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import fixtures  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TINY_ZIP = SHARED / "datasets" / "tiny-imagenet-200-dev.zip"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Tests never read or write the user's cache or the network."""
    monkeypatch.setenv("TINYVISION_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYVISION_DATA_DIR", raising=False)


@pytest.fixture
def tiny_tree(tmp_path):
    return fixtures.tiny_imagenet_tree(tmp_path / "src")


@pytest.fixture
def tiny_zip(tmp_path, tiny_tree):
    return fixtures.zip_tree(tiny_tree, tmp_path / "tiny-imagenet-200.zip")


@pytest.fixture
def real_cache_dir():
    """Real-data tests share the user's cache so CI builds each real cache once."""
    return os.environ.get("TINYVISION_TEST_CACHE", str(Path.home() / ".cache" / "tinyvision"))
