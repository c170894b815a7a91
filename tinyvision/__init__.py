"""tinyvision: train, evaluate and compare image classifiers on small-image datasets."""

__version__ = "0.1.0"

from tinyvision.errors import TinyVisionError  # noqa: E402

__all__ = ["TinyVisionError", "__version__"]
