# Fresh-machine entry points. Everything lives in .venv next to this file.
#
#   make demo    installs what the demo needs, then runs `cptr demo` (train-free: the shipped demo models)
#   make test    installs every extra, then runs the test suite
#
# torch is installed first, on its own, and then pinned: every later install runs with a pip constraint
# on the exact torch that was installed, so no dependency (clip-anytorch -> torchvision, ...) can swap it.
# TORCH picks that first torch. The default is the CPU build on this kind of machine; for a CUDA build:
#   make test TORCH="torch==2.14.1"          (or any torch >= 2.2 that pip can find)
PY ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --progress-bar on
PIN := $(VENV)/torch-pin.txt

.PHONY: setup setup-demo demo test bench clean

$(PIN):
	@echo "== creating $(VENV) and installing $(TORCH)"
	$(PY) -m venv $(VENV)
	$(PIP) --upgrade pip "setuptools<81" wheel
	$(PIP) "$(TORCH)"
	$(BIN)/python -c 'import torch; print("torch==" + torch.__version__)' > $(PIN).tmp && mv $(PIN).tmp $(PIN)
	@echo "== pinned $$(cat $(PIN)) for every later install"

# The demo's dependencies only (export, serve, align).
$(VENV)/.demo-installed: pyproject.toml $(PIN)
	@echo "== installing CPTR with the demo's extras"
	$(PIP) -c $(PIN) -e ".[demo]"
	@touch $@

# Every extra plus the test tools.
$(VENV)/.dev-installed: pyproject.toml $(PIN)
	@echo "== installing CPTR with every extra and the test tools"
	$(PIP) -c $(PIN) -e ".[dev]"
	@touch $@ $(VENV)/.demo-installed

setup-demo: $(VENV)/.demo-installed
setup: $(VENV)/.dev-installed

demo: setup-demo
	$(BIN)/cptr demo

test: setup
	$(BIN)/python -m pytest -q -ra

bench: setup
	$(BIN)/python benchmarks/latency.py --quick

clean:
	rm -rf $(VENV) triton_repo cptr-demo
