# Fresh-machine entry points. Everything lives in .venv next to this file.
#
#   make demo    installs what the demo needs, then runs `cptr demo` (train-free: the shipped demo models)
#   make test    installs every extra, then runs the test suite
#   make docs    builds the documentation site into site/ (fails on a broken link or a missing page)
#   make wheelhouse  builds dist/wheelhouse/ for the offline GPU check (docs/device_check.md)
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

.PHONY: setup setup-demo setup-ui setup-deploy setup-docs demo test test-random lint docs bench clean wheelhouse

$(PIN):
	@echo "== creating $(VENV) and installing $(TORCH)"
	$(PY) -m venv $(VENV)
	$(PIP) --upgrade pip "setuptools<81" wheel
	$(PIP) "$(TORCH)"
	$(BIN)/python -c 'import torch; print("torch==" + torch.__version__)' > $(PIN).tmp && mv $(PIN).tmp $(PIN)
	@echo "== pinned $$(cat $(PIN)) for every later install"

# $(call install,EXTRA,WHAT): install CPTR editable with one extra, under the torch pin.
define install
	@echo "== installing $(2)"
	$(PIP) -c $(PIN) -e ".[$(1)]"
endef

# The demo's dependencies only (export, serve, align).
$(VENV)/.demo-installed: pyproject.toml $(PIN)
	$(call install,demo,CPTR with the demo's extras)
	@touch $@

# Every extra plus the test tools.
$(VENV)/.dev-installed: pyproject.toml $(PIN)
	$(call install,dev,CPTR with every extra and the test tools)
	@touch $@ $(VENV)/.demo-installed

# The web page's extra and its browser-test driver (Playwright on the system's Chromium).
$(VENV)/.ui-installed: pyproject.toml $(PIN)
	$(call install,ui-test,CPTR's web page (cptr ui) and its browser-test tools)
	@touch $@

# The offline checkers of what `cptr deploy k8s` writes (Kubernetes schemas, hadolint): about 130 MB,
# kept out of make test's install like the web page's tools; .ci/run installs both.
$(VENV)/.deploy-installed: pyproject.toml $(PIN)
	$(call install,deploy,the checkers of cptr deploy's manifests (kubernetes-validate and hadolint))
	@touch $@

# The documentation site's builder (MkDocs + Material).
$(VENV)/.docs-installed: pyproject.toml $(PIN)
	$(call install,docs,the documentation site's builder (MkDocs with the Material theme))
	@touch $@

setup-docs: $(VENV)/.docs-installed
setup-ui: $(VENV)/.ui-installed
setup-deploy: $(VENV)/.deploy-installed
setup-demo: $(VENV)/.demo-installed
setup: $(VENV)/.dev-installed

demo: setup-demo
	$(BIN)/cptr demo

# One process: Triton servers started at the same moment on one machine can abort on the Python backend's
# start-up lock (boost::interprocess::lock_exception), so the suite is not split over pytest-xdist workers.
PYTEST := $(BIN)/python -m pytest -q -ra --durations=15

test: setup
	$(PYTEST)

test-random: setup
	$(PYTEST) -p randomly

lint: setup
	$(BIN)/ruff check cptr tests benchmarks
	$(BIN)/ruff format --check cptr tests benchmarks
	$(BIN)/lint-imports

docs: setup-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

bench: setup
	$(BIN)/python benchmarks/latency.py --quick

clean:
	rm -rf $(VENV) triton_repo cptr-demo site

# ---------------------------------------------------------------------------------------- wheelhouse
# dist/wheelhouse/ (git-ignored): the CPTR wheel plus every wheel benchmarks/device_check.sh installs with
# `pip install --no-index` on a GPU machine that already has Python 3.12, torch, numpy, onnx, onnxruntime,
# Triton and nvcc, but no package index. Binary wheels come for CPython 3.12 (the GPU machine) and 3.11
# (this machine, for `device_check.sh --dry-run`); never torch or nvidia-* wheels. No network at all is
# needed afterwards. WHEELHOUSE=DIR builds elsewhere (the test does).
WHEELHOUSE ?= dist/wheelhouse
WHEELHOUSE_PYTHONS ?= 3.12 3.11
WHEELHOUSE_MAX_MB ?= 60
WHEELHOUSE_PY ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PY))
# CPTR's dependencies except torch and numpy (pyproject.toml), the gpu extra (ninja), the test tools, and
# pip/setuptools for a venv that comes without them. No matplotlib: the check's plot is optional.
WHEELHOUSE_REQS := "pillow>=10" "typer>=0.12" "rich>=13" "tqdm>=4.66" "ninja>=1.11" "pytest>=8" "pytest-timeout>=2.2" \
	pip "setuptools>=77,<81"

wheelhouse:
	@echo "== building $(WHEELHOUSE): the CPTR wheel, then its dependencies for CPython $(WHEELHOUSE_PYTHONS)"
	rm -rf $(WHEELHOUSE) && mkdir -p $(WHEELHOUSE)
	$(WHEELHOUSE_PY) -m pip wheel --no-deps --disable-pip-version-check --progress-bar off --wheel-dir $(WHEELHOUSE) .
	@for v in $(WHEELHOUSE_PYTHONS); do \
		echo "== wheels for CPython $$v (manylinux_2_28 x86_64 or older, pure Python)"; \
		$(WHEELHOUSE_PY) -m pip download --disable-pip-version-check --progress-bar off --only-binary=:all: \
			--dest $(WHEELHOUSE) --python-version $$v --implementation cp --abi cp$$(echo $$v | tr -d .) \
			--platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 $(WHEELHOUSE_REQS) || exit 1; \
	done
	@if ls $(WHEELHOUSE) | grep -Ei '^(torch|nvidia|triton|numpy)[-_]'; then \
		echo "error: $(WHEELHOUSE) must not hold torch, nvidia, triton or numpy wheels (the GPU machine has its own)"; exit 1; fi
	@ls -1 $(WHEELHOUSE)
	@kb=$$(du -sk $(WHEELHOUSE) | cut -f1); echo "== $(WHEELHOUSE): $$(ls $(WHEELHOUSE) | wc -l) wheels, $$((kb / 1024)) MiB ($$kb KiB)"; \
	if [ $$kb -gt $$(( $(WHEELHOUSE_MAX_MB) * 1000 * 1000 / 1024 )) ]; then \
		echo "error: $(WHEELHOUSE) is over $(WHEELHOUSE_MAX_MB) MB"; exit 1; fi
