# Set-up and the two front-door commands. Works on a fresh Debian machine with Python 3.11 + pip
# (as root for apt-get; without apt the Fashion-MNIST package step is skipped).
PYTHON ?= python3

.PHONY: setup test-deps demo test bench

setup:
	@if command -v apt-get >/dev/null 2>&1 && [ ! -d /usr/share/datasets/fashion-mnist ]; then \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; fi
	$(PYTHON) -m pip install -q -e ".[test]"

# The main job: train the default recipe on Fashion-MNIST (Debian's dataset-fashion-mnist),
# evaluate on its test split, print the run dir and the numbers (3 to 15 minutes on 2 CPU cores: see README).
demo: setup
	tinyvision demo

# Debian's chromium renders the HTML reports in a headless-browser test, and postgresql serves a
# search shared by two workers in another (each skipped without its package).
test-deps:
	@if command -v apt-get >/dev/null 2>&1 && { ! command -v chromium >/dev/null 2>&1 || \
		! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }; then \
		apt-get update -qq && apt-get install -y -qq chromium postgresql; fi

test: setup test-deps
	$(PYTHON) -m pytest -q

bench: setup
	$(PYTHON) benchmarks/data_pipeline.py
	$(PYTHON) benchmarks/train_settings.py
	$(PYTHON) benchmarks/train_throughput.py
	$(PYTHON) benchmarks/fashion_mnist.py
