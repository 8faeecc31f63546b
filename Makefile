# astroedge: `make demo` sets up a fresh machine and runs the main job; `make test` sets up and tests.
SHELL := /bin/bash
PY_SYS ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BUILD := build
# torch is pinned to the CPU wheel: any other spec downloads GBs of CUDA packages.
TORCH := torch==2.13.0
# Set-up steps print one line each (scripts/step.sh); their full output goes to build/logs/*.log.
STEP := scripts/step.sh
# No "Entering/Leaving directory" lines from the sub-makes that CMake's Makefiles run.
MAKEFLAGS += --no-print-directory

.PHONY: setup test demo bench lint format mypy-links sample plugins runtime ort-headers sanitize aarch64-check wheel sdk fuzz clean

setup: $(STAMP) plugins runtime

$(STAMP): pyproject.toml
	@$(STEP) "python venv $(VENV)" venv $(PY_SYS) -m venv $(VENV)
	@$(STEP) "pip: upgrade pip" pip-upgrade $(PY) -m pip install --upgrade pip
	@$(STEP) "pip: $(TORCH) (CPU)" pip-torch $(PY) -m pip install $(TORCH)
	@$(STEP) "pip: astroedge[host,cpu,dev], editable" pip-astroedge $(PY) -m pip install -e '.[host,cpu,dev]'
	@touch $@

# AMSU kernels + ONNX Runtime custom-op library (plugins/amsu/README.md); CUDA parts only when nvcc exists.
plugins: $(STAMP) ort-headers
	@$(STEP) "cmake: configure $(BUILD)/plugins" plugins-configure \
	  $(VENV)/bin/cmake -S plugins -B $(BUILD)/plugins -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE=$(abspath $(PY))
	@$(STEP) "build: AMSU kernels + onnxruntime library (-j2)" plugins-build $(VENV)/bin/cmake --build $(BUILD)/plugins -j2

# ONNX Runtime C/C++ headers into .deps/onnxruntime (plugins/scripts/get_ort_headers.sh; never vendored).
ort-headers: $(STAMP)
	@CMAKE=$(VENV)/bin/cmake $(STEP) "onnxruntime headers (.deps/onnxruntime)" ort-headers plugins/scripts/get_ort_headers.sh

# The CPU kernels against naive float64 loops under ASan + UBSan (tests/kernels/*_cpu_test.cc).
sanitize: plugins
	$(VENV)/bin/cmake --build $(BUILD)/plugins -j2 --target amsu_cpu_test_asan spikematmul_cpu_test_asan
	$(BUILD)/plugins/amsu_cpu_test_asan
	$(BUILD)/plugins/spikematmul_cpu_test_asan

# C runtime build/runtime/libastroedge.so and the C sample build/runtime/ae_generate (docs/c-api.md);
# tests/test_c_api.py runs the sample.
runtime: $(STAMP) ort-headers
	@$(STEP) "cmake: configure $(BUILD)/runtime" runtime-configure \
	  $(VENV)/bin/cmake -S runtime -B $(BUILD)/runtime -DPython3_EXECUTABLE=$(abspath $(PY))
	@$(STEP) "build: libastroedge + C sample (-j2)" runtime-build $(VENV)/bin/cmake --build $(BUILD)/runtime -j2

# clang with libFuzzer for runtime/fuzz (tests/test_c_api.py builds and runs it, and skips with the reason
# where clang is missing): installed with apt-get where that is possible (CI runs as root on Debian).
fuzz-tools:
	@command -v clang++ >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq >/dev/null && \
	  apt-get install -y -qq clang >/dev/null; } || echo "clang not installed: the libFuzzer run of tests/test_c_api.py will be skipped"

test: setup fuzz-tools
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory sanitize
	$(PY) -m pytest -q

# The hostile-input fuzz harness at full size (tests/test_fuzz.py, docs/security.md; `make test` runs about a
# minute of it): 10,000 package mutants (FUZZ_N=...), a third as many state files, half as many checkpoints.
# Counts per target and outcome go to build/fuzz/report.json. Hours on 2 cores.
fuzz: setup
	rm -f $(BUILD)/fuzz/report.json
	ASTROEDGE_FUZZ_N=$(or $(FUZZ_N),10000) ASTROEDGE_FUZZ_SEED=$(or $(FUZZ_SEED),0) ASTROEDGE_FUZZ_REPORT=$(BUILD)/fuzz/report.json \
	  $(PY) -m pytest -q -s tests/test_fuzz.py -k fuzz_

# The main job: export the bundled sample to a package, verify it, and stream text from it with the
# torch-free runtime (Python CLI, then the C sample app on the same package).
demo: setup
	@echo "set-up done (logs in $(BUILD)/logs/); the demo:"
	@echo
	$(VENV)/bin/astroedge export samples/shakespeare/model.pt -o $(BUILD)/shakespeare.aepkg --force
	$(VENV)/bin/astroedge inspect $(BUILD)/shakespeare.aepkg
	$(VENV)/bin/astroedge check samples/shakespeare/model.pt $(BUILD)/shakespeare.aepkg
	$(VENV)/bin/astroedge run $(BUILD)/shakespeare.aepkg --prompt "ROMEO:" --max-new-tokens 300 --seed 1 --stats
	$(BUILD)/runtime/ae_generate $(BUILD)/shakespeare.aepkg "JULIET:" 200 --library $(BUILD)/plugins/libastroedge_ort.so
	@echo
	@echo "What to try next:"
	@echo "  $(VENV)/bin/astroedge run $(BUILD)/shakespeare.aepkg --prompt 'KING:' --temperature 0   # greedy, your prompt"
	@echo "  $(VENV)/bin/astroedge quantize $(BUILD)/shakespeare.aepkg -o $(BUILD)/shakespeare-int8.aepkg --int8"
	@echo "  $(VENV)/bin/astroedge bench $(BUILD)/shakespeare.aepkg                # latency vs a Transformer"
	@echo "  $(VENV)/bin/astroedge --help; README.md (install on a device), docs/jetson.md (Jetson)"

# Retrains the bundled sample (the exact command in samples/shakespeare/MODEL_CARD.md).
# DEVICE=cuda make sample on a GPU machine (7 minutes on an H100); on a 2-core CPU it takes many hours.
sample: $(STAMP)
	$(VENV)/bin/astroedge train samples/shakespeare/input.txt -o samples/shakespeare/model.pt --config sample \
	  --steps 2268 --seed 1 --lr 3e-3 --batch-size 32 --seq-len 512 --device $(or $(DEVICE),cpu)

bench: setup
	$(PY) -m astroedge.bench.amsu --out $(BUILD)/bench/amsu_cpu.json
	$(VENV)/bin/astroedge export samples/shakespeare/model.pt -o $(BUILD)/shakespeare.aepkg --force
	$(VENV)/bin/astroedge bench $(BUILD)/shakespeare.aepkg -o $(BUILD)/bench/sample.json --plot $(BUILD)/bench/sample
	$(VENV)/bin/astroedge bench --config bench --contexts 128,1024,8192 --decode-steps 16 --prefill-tokens 256 \
	  -o $(BUILD)/bench/bench.json --plot $(BUILD)/bench/bench

# aarch64 (Jetson's CPU): cross-compile with g++-aarch64-linux-gnu, run the C kernel tests and the C
# sample under qemu-user against PyPI's aarch64 libonnxruntime; same greedy tokens as x86 (docs/jetson.md).
# Installs the cross compiler and qemu-user-static with apt-get when run as root.
# Exit status 77 (the tools cannot be installed here) is a skip, reported, not a failure.
aarch64-check: setup
	@scripts/aarch64_check.sh || [ $$? -eq 77 ]

# The wheel (scikit-build-core; the CUDA library too where nvcc is found), into $(BUILD)/dist.
wheel: $(STAMP)
	$(PY) -m pip wheel . --no-deps -w $(BUILD)/dist

# The C SDK: include/, lib/ (libastroedge.so.1, libastroedge_ort.so, libonnxruntime), CMake package,
# pkg-config file and the C sample, into $(BUILD)/sdk/install (PREFIX=... to choose).
sdk: $(STAMP) ort-headers
	@$(STEP) "cmake: configure $(BUILD)/sdk" sdk-configure \
	  $(VENV)/bin/cmake -S . -B $(BUILD)/sdk -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE=$(abspath $(PY))
	@$(STEP) "build: the SDK (-j2)" sdk-build $(VENV)/bin/cmake --build $(BUILD)/sdk -j2
	@$(STEP) "install: $(or $(PREFIX),$(BUILD)/sdk/install)" sdk-install $(VENV)/bin/cmake --install $(BUILD)/sdk --prefix $(or $(PREFIX),$(BUILD)/sdk/install)

# mypy cannot follow setuptools' editable-install finder, which installs export/ and runtime/python/ as astroedge.export
# and astroedge.runtime: these two links give it those names (pyproject.toml [tool.mypy] mypy_path, hence build/ not $(BUILD)).
mypy-links:
	@mkdir -p build/mypy/astroedge
	@ln -sfn ../../../export build/mypy/astroedge/export
	@ln -sfn ../../../runtime/python build/mypy/astroedge/runtime

# C/C++ sources that clang-format owns (.clang-format): everything tracked, generated headers live in build/.
CXX_SOURCES = $(shell git ls-files '*.c' '*.cc' '*.h' '*.cu' '*.cuh' 2>/dev/null)

# Formatters and the type checker, pinned in the dev extra: ruff (lint + format), clang-format, mypy.
lint: $(STAMP) mypy-links
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/clang-format --dry-run -Werror $(CXX_SOURCES)
	$(PY) -m mypy

# Applies both formatters (CONTRIBUTING.md).
format: $(STAMP)
	$(PY) -m ruff format .
	$(VENV)/bin/clang-format -i $(CXX_SOURCES)

clean:
	rm -rf $(BUILD) .deps
