"""Evaluation of run dirs: metrics, figures, prediction on image files, export."""
from tinyvision.evaluate.evaluation import evaluate_run
from tinyvision.evaluate.export import export_run
from tinyvision.evaluate.inference import predict_files

__all__ = ["evaluate_run", "export_run", "predict_files"]
