# Two entry points: `make run` (the main job) and `make test` (the whole suite, as CI runs it);
# `make test-fast` is the edit–test loop's subset: no training, no processes (under a minute).
# Both create .venv and install what they need on a fresh machine.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.betavae-installed
# PyTorch is installed first and pinned, so pip never swaps in another (multi-GB CUDA) build.
# A GPU user points this at PyTorch's CUDA wheels, e.g.
#   make run TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cu128"
TORCH_VERSION ?= 2.13.0
TORCH_PIP_ARGS ?=
# The real MNIST files for the tests; tests that need them are skipped when this folder is absent.
export BETAVAE_MNIST_DIR ?= $(abspath ../shared/data/mnist)

# Debian's Chromium, which the demo's browser tests drive through Playwright (no browser download
# works here); installed with apt by `make test`, through sudo when not root.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The main job: the reproduction study at its small scale (under half an hour on two CPU cores).
STUDY_DIR ?= runs/reproduce
STUDY_SCALE ?= small

.PHONY: run test test-fast install bench clean demo ort-web

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# pip installs without compiling every module to bytecode (half the install's time, torch's and Ray's
# thousands of modules, most of which nothing imports): Python writes a module's bytecode into the venv
# the first time it imports it, and later processes read it. A machine that turns that off for every
# process (PYTHONDONTWRITEBYTECODE, set on CI's) would then compile torch afresh in each of the hundred
# processes the tests start, so it is turned back on for what this Makefile runs.
# What the package and its tests import is compiled once at install, by two processes at once (otherwise
# each test worker would compile the same modules at the same time in its first seconds).
unexport PYTHONDONTWRITEBYTECODE
PIP_INSTALL := $(BIN)/python -m pip install --quiet --no-compile
IMPORTED_WITH_TORCH := import torch._dynamo, torch.onnx
IMPORTED_WITHOUT := import betavae.cli, numpy, scipy.stats, sklearn.linear_model, sklearn.ensemble, \
	sklearn.svm, sklearn.decomposition, matplotlib.pyplot, PIL.Image, onnx, onnxruntime, ray, \
	playwright.sync_api, pytest, xdist, hypothesis

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP_INSTALL) torch==$(TORCH_VERSION) $(TORCH_PIP_ARGS)
	$(PIP_INSTALL) -e '.[test]'
	$(BIN)/python -c "$(IMPORTED_WITH_TORCH)" & torch=$$!; $(BIN)/python -c "$(IMPORTED_WITHOUT)" && wait $$torch
	touch $@

# ONNX Runtime Web for `betavae demo` (and the demo's tests): its pinned npm package, checked against
# its integrity hash, in the user cache (~/.cache/betavae/onnxruntime-web/<version>/). `betavae demo`
# fetches it on first use anyway; fetched here, the tests and an offline demo find it. Installed,
# this says so and exits at once, so it runs every time rather than behind a stamp file.
ort-web: $(STAMP)
	$(BIN)/python -m betavae.demo.vendor

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

install: $(STAMP) ort-web

# The main job: `betavae reproduce` trains the study's grids, measures, judges each claim of the
# paper and writes $(STUDY_DIR)/report.html (it prints the path). Run again, it resumes: finished
# runs and measurements are reused, and a finished study only gets its report rewritten.
# MNIST comes from $(BETAVAE_MNIST_DIR) when it holds the files, else from the user cache, downloaded
# once (offline, the MNIST parts are skipped and the report says so).
MNIST_FLAG := $(if $(wildcard $(BETAVAE_MNIST_DIR)/train-images-idx3-ubyte.gz),--data-dir $(BETAVAE_MNIST_DIR))
run: $(STAMP)
	$(BIN)/betavae reproduce --scale $(STUDY_SCALE) --out $(STUDY_DIR) $(MNIST_FLAG)

# The linter first (seconds): rules in pyproject.toml, [tool.ruff]. The tests run in $(TEST_WORKERS)
# processes (pytest-xdist): a file's tests stay in one process, which sets up its module fixtures
# once, and the tests of Chromium and of Ray each in one (tests/marks.py, tests/conftest.py).
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS)
test: $(STAMP) ort-web $(CHROMIUM)
	$(BIN)/ruff check .
	$(PYTEST)

# The tests marked slow (they train, sweep, start processes or Ray) are left out; see tests/conftest.py.
test-fast: $(STAMP) ort-web
	$(BIN)/ruff check .
	$(PYTEST) -m "not slow"

# The study's β = 1 and β = 4 runs on the heart set (after `make run`) in the browser, side by side:
# one slider per latent dimension drives both, with held-out images and their reconstructions.
demo: $(STAMP) ort-web
	$(BIN)/betavae demo $(STUDY_DIR)/shapes/compare/b1-s0 $(STUDY_DIR)/shapes/compare/b4-s0

# time_to_disentangle.py is not here: it trains for hours on a CPU (see docs/notes/time-to-disentangle.md).
bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/metrics_speed.py
	$(BIN)/python benchmarks/sweep_throughput.py
	$(BIN)/python benchmarks/study_throughput.py --scale smoke
	$(BIN)/python benchmarks/packed_training.py
	$(BIN)/python benchmarks/packed_sweep.py --seeds 1
	$(BIN)/python benchmarks/data_reading.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache test-output
