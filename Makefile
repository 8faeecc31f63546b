# astroedge: `make demo` sets up a fresh machine and runs the main job; `make test` sets up and tests.
SHELL := /bin/bash
PY_SYS ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BUILD := build
# torch is pinned to the CPU wheel: any other spec downloads GBs of CUDA packages.
TORCH := torch==2.13.0

.PHONY: setup test demo bench lint sample plugins sanitize clean

setup: $(STAMP) plugins

$(STAMP): pyproject.toml
	$(PY_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[host,cpu,dev]'
	touch $@

plugins: $(STAMP)
	@true

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/astroedge generate samples/shakespeare/model.pt --prompt "ROMEO:" --max-new-tokens 200 --seed 1

# Retrains the bundled sample (the exact command in samples/shakespeare/MODEL_CARD.md).
sample: $(STAMP)
	$(VENV)/bin/astroedge train samples/shakespeare/input.txt -o samples/shakespeare/model.pt --config sample --minutes 20 --seed 1

bench: setup
	@true

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(BUILD) .deps
