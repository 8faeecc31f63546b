#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, nvcc, cmake and python3 + torch (CUDA) + numpy + pytest, but no
# network and no ONNX Runtime headers: build only the CUDA kernels and their ctypes test library
# (no ORT), run the GPU tests and the CUDA kernel benchmark. Needs no virtualenv.
#
# Usage (repository root):  plugins/scripts/gpu_check.sh [OUT_DIR]
#   OUT_DIR (default build/bench) receives amsu_cuda.json, the benchmark numbers.
# Environment: CMAKE (default: cmake on PATH, else .venv/bin/cmake), PYTHON (default python3),
#   CUDA_ARCHS (default: the GPU's own arch via CMake's "native", to keep the build short).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT_DIR=${1:-build/bench}
PYTHON=${PYTHON:-python3}
CMAKE=${CMAKE:-$(command -v cmake || echo .venv/bin/cmake)}
CUDA_ARCHS=${CUDA_ARCHS:-native}
BUILD=build/plugins-gpu

command -v nvcc >/dev/null || { echo "error: nvcc not found; add the CUDA toolkit's bin folder to PATH" >&2; exit 1; }
"$CMAKE" -S plugins -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DASTROEDGE_WITH_ORT=OFF -DASTROEDGE_CUDA_ARCHS="$CUDA_ARCHS" \
  -DPython3_EXECUTABLE="$(command -v "$PYTHON")" >/dev/null
"$CMAKE" --build "$BUILD" -j"$(nproc)" --target amsu_kernels_cuda_test spikematmul_kernels_cuda_test
mkdir -p build/plugins
cp "$BUILD/libamsu_kernels_cuda_test.so" "$BUILD/libspikematmul_kernels_cuda_test.so" build/plugins/

export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
"$PYTHON" -m pytest -q -m gpu -p no:cacheprovider tests/test_kernels_gpu.py tests/test_kernels_spikematmul_gpu.py
"$PYTHON" -m astroedge.bench.amsu_cuda --out "$OUT_DIR/amsu_cuda.json"
