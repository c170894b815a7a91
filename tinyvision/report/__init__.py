"""Reports over run dirs: the compare page."""
from tinyvision.report.compare import compare_runs

__all__ = ["compare_runs"]
