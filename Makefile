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
ORT_WEB := src/betavae/demo/vendor/onnxruntime-web/VERSION

RUN_DIR ?= runs/quickstart-shapes
RUN_FLAGS ?= --dataset shapes --arch conv28 --latent 10 --beta 4 --steps 2000 --checkpoint-every 500

.PHONY: run test test-fast install bench clean demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION) $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# ONNX Runtime Web for `betavae demo`: its pinned npm package, checked against its integrity hash.
$(ORT_WEB): | $(STAMP)
	$(BIN)/python -m betavae.demo.vendor

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

install: $(STAMP) $(ORT_WEB)

# The main job: a short β-VAE run on the Shapes set (conv28, 10 latents, β = 4, 2,000 steps)
# into $(RUN_DIR), which gets a checkpoint, logs and held-out reconstructions.
# Run again, it resumes (or, if finished, re-evaluates) the same run folder instead of failing.
run: $(STAMP)
	@if [ -f $(RUN_DIR)/checkpoint.pt ]; then \
		$(BIN)/betavae train --out $(RUN_DIR) --resume; \
	else \
		$(BIN)/betavae train $(RUN_FLAGS) --out $(RUN_DIR); \
	fi

# The linter first (seconds): rules in pyproject.toml, [tool.ruff].
test: $(STAMP) $(ORT_WEB) $(CHROMIUM)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# The tests marked slow (they train, sweep, start processes or Ray) are left out; see tests/conftest.py.
test-fast: $(STAMP) $(ORT_WEB)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow"

# The quickstart run (`make run`) in the browser: sliders per latent dimension, held-out images.
demo: $(STAMP) $(ORT_WEB)
	$(BIN)/betavae demo $(RUN_DIR)

# time_to_disentangle.py is not here: it trains for hours on a CPU (see docs/time-to-disentangle.md).
bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/metrics_speed.py
	$(BIN)/python benchmarks/sweep_throughput.py
	$(BIN)/python benchmarks/data_reading.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache test-output src/betavae/demo/vendor
