"""Budgeted architecture and hyperparameter search on Optuna; trials are ordinary run dirs."""
from tinyvision.search.budget import Budget, parse_budget
from tinyvision.search.space import load_space, parse_space
from tinyvision.search.study import retrain, run_search

__all__ = ["Budget", "load_space", "parse_budget", "parse_space", "retrain", "run_search"]
