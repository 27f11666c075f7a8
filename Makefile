# Fresh-machine entry points. Everything lives in .venv next to this file.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench clean

$(BIN)/cptr: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "setuptools<81" wheel
	# The CPU build of torch 2.13.0 is a local wheel here; elsewhere pip takes it from PyPI.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[dev]"
	@touch $@

setup: $(BIN)/cptr

demo: setup
	$(BIN)/cptr-export --style demo --alpha 0.7 --out triton_repo

test: setup
	$(BIN)/python -m pytest -q -ra

bench: setup
	$(BIN)/python benchmarks/latency.py --quick

clean:
	rm -rf $(VENV) triton_repo
