"""Data layer: readers -> uint8 cache -> batched loader with on-device augmentation."""
from tinyvision.data.cache import cache_root, prepare
from tinyvision.data.dataset import Dataset, Split
from tinyvision.data.sources import DATASETS

__all__ = ["DATASETS", "Dataset", "Split", "cache_root", "prepare"]
