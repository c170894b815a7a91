# Set-up and the two front-door commands. Works on a fresh Debian machine with Python 3.11 + pip
# (as root for apt-get; without apt the Fashion-MNIST package step is skipped).
PYTHON ?= python3

.PHONY: setup demo test bench

setup:
	@if command -v apt-get >/dev/null 2>&1 && [ ! -d /usr/share/datasets/fashion-mnist ]; then \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; fi
	$(PYTHON) -m pip install -q -e ".[test]"

# The main job. Until the training engine lands (issue 4), it prepares and describes the
# default dataset, Fashion-MNIST from Debian's dataset-fashion-mnist package.
demo: setup
	tinyvision data info fashion-mnist

test: setup
	$(PYTHON) -m pytest -q

bench: setup
	$(PYTHON) benchmarks/data_pipeline.py
