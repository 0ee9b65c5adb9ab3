# Two entry points: `make run` (the main job) and `make test` (the whole suite).
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

RUN_DIR ?= runs/quickstart-shapes
RUN_FLAGS ?= --dataset shapes --arch conv28 --latent 10 --beta 4 --steps 2000 --checkpoint-every 500

.PHONY: run test install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION) $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(STAMP)

# The main job. Until the reproduction study exists: a short β-VAE run on the Shapes set.
# Run again, it resumes (or, if finished, re-evaluates) the same run folder instead of failing.
run: $(STAMP)
	@if [ -f $(RUN_DIR)/checkpoint.pt ]; then \
		$(BIN)/betavae train --out $(RUN_DIR) --resume; \
	else \
		$(BIN)/betavae train $(RUN_FLAGS) --out $(RUN_DIR); \
	fi

test: $(STAMP)
	$(BIN)/python -m pytest -q

# time_to_disentangle.py is not here: it trains for hours on a CPU (see README, Performance).
bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/metrics_speed.py
	$(BIN)/python benchmarks/sweep_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
