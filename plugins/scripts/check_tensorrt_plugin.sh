#!/usr/bin/env bash
# Compile-check and link-check the TensorRT plugin library (AMSU and SpikeMatMul plugins) against
# TensorRT's public headers, without TensorRT's libraries, without nvcc and without a GPU.
#
# TensorRT cannot be installed on our build machines, but its headers are public (NVIDIA/TensorRT on
# GitHub, include/ of each release branch). Given such an include/ folder this script:
#   1. generates amsu_contract.h and spikematmul_contract.h from the op contracts (as the CMake build does),
#   2. compiles every plugin source with g++ -std=c++17 -Wall -Wextra -Werror, first -fsyntax-only,
#      then to position-independent objects with -fvisibility=hidden (deprecation warnings are errors,
#      so the plugin uses no API that a later TensorRT removes),
#   3. links a shared library WITHOUT libnvinfer and without the CUDA kernels, and checks with nm that
#      it exports exactly getCreators and setLoggerFinder and that its only unresolved symbols are the
#      kernel ABIs (amsu_*, spikematmul_*), the C/C++ runtime, and nothing from TensorRT or CUDA,
#   4. links the same objects with the CPU kernels into amsu_host_check and spikematmul_host_check
#      (plugins/*/tensorrt/check/), which drive each plugin the way TensorRT does; with $HOST_CHECK_OUT
#      (a folder) set they are kept there, for tests/test_tensorrt_plugin.py to compare enqueue's
#      results with the reference models.
# The library linked here is a check artefact in a temporary folder, never the real build (CMake).
#
# Usage: plugins/scripts/check_tensorrt_plugin.sh TRT_INCLUDE_DIR [CUDA_INCLUDE_DIR]
#   TRT_INCLUDE_DIR   folder holding NvInfer.h, e.g. /tmp/trt-10.3/include
#   CUDA_INCLUDE_DIR  folder holding cuda_runtime_api.h (default /usr/local/cuda/include)
# Environment: CXX (default g++), PYTHON (default python3), HOST_CHECK_OUT (folder to keep the host checks in). Exit 0 when every check passes.
set -euo pipefail

TRT_INCLUDE=${1:?usage: $0 TRT_INCLUDE_DIR [CUDA_INCLUDE_DIR]}
CUDA_INCLUDE=${2:-/usr/local/cuda/include}
CXX=${CXX:-g++}
PYTHON=${PYTHON:-python3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SRC_DIRS=("$ROOT/plugins/amsu/tensorrt" "$ROOT/plugins/spikematmul/tensorrt" "$ROOT/plugins/common/tensorrt")

[[ -f "$TRT_INCLUDE/NvInfer.h" ]] || { echo "error: $TRT_INCLUDE/NvInfer.h not found; pass TensorRT's include/ folder" >&2; exit 2; }
[[ -f "$CUDA_INCLUDE/cuda_runtime_api.h" ]] || {
  echo "error: $CUDA_INCLUDE/cuda_runtime_api.h not found; pass the CUDA toolkit's include/ folder as 2nd argument" >&2
  exit 2
}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

version=$(printf '#include "NvInferVersion.h"\nNV_TENSORRT_MAJOR.NV_TENSORRT_MINOR.NV_TENSORRT_PATCH\n' \
  | "$CXX" -E -P -x c++ -I"$TRT_INCLUDE" - | tail -n1 | tr -d ' ')
echo "TensorRT headers: $TRT_INCLUDE (version ${version:-unknown}); compiler: $($CXX --version | head -n1)"

for op in amsu spikematmul; do
  "$PYTHON" "$ROOT/plugins/gen_contract_header.py" "$ROOT/astroedge/contract/$op.json" "$WORK/${op}_contract.h"
done

includes=(-I"$WORK" -I"$ROOT/plugins/common" -I"$ROOT/plugins/amsu/kernels" -I"$ROOT/plugins/spikematmul/kernels")
for dir in "${SRC_DIRS[@]}"; do includes+=(-I"$dir"); done
flags=(-std=c++17 -Wall -Wextra -Werror -fPIC -fvisibility=hidden -O2 "${includes[@]}" -isystem "$TRT_INCLUDE" -isystem "$CUDA_INCLUDE")
objects=()
for src in "${SRC_DIRS[0]}"/*.cc "${SRC_DIRS[1]}"/*.cc "${SRC_DIRS[2]}"/*.cc; do
  obj="$WORK/$(basename "${src%.cc}").o"
  "$CXX" "${flags[@]}" -fsyntax-only "$src"
  "$CXX" "${flags[@]}" -c "$src" -o "$obj"
  objects+=("$obj")
  echo "compiled: $(basename "$src")"
done

lib="$WORK/libastroedge_trt_check.so"
"$CXX" -shared -o "$lib" "${objects[@]}"

exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TW]$/ {print $3}' | sort | paste -sd' ')
if [[ "$exported" != "getCreators setLoggerFinder" ]]; then
  echo "FAIL: exported functions are '$exported', expected 'getCreators setLoggerFinder'" >&2
  exit 1
fi
undefined=$(nm -D --undefined-only "$lib" | awk '{print $2}' | sort)
kernel_syms=$(grep -E '^(amsu|spikematmul)_' <<<"$undefined" | paste -sd' ' || true)
foreign=$(grep -vE '^(amsu_|spikematmul_|_Zn[wa]|_Zd[la]|_ZNS|_ZNK?St|_ZSt|_ZTV(N10__cxxabiv|St)|_ZTI(St|N10__cxxabiv)|__cxa_|__gxx_|_Unwind_|__gmon_start__|_ITM_|__stack_chk_fail)|@GLIBC' \
  <<<"$undefined" | grep -v '^$' || true)
if [[ -n "$foreign" ]]; then
  echo "FAIL: unexpected unresolved symbols (TensorRT or CUDA would be needed at link time):" >&2
  echo "$foreign" >&2
  exit 1
fi
echo "exports: $exported"
echo "unresolved kernel ABI (from amsu_kernels_cuda, spikematmul_kernels_cuda): $kernel_syms"
# The CPU kernels are other components' code: built with their own flags, not held to this script's -Werror.
"$CXX" -std=c++17 -O2 -fopenmp-simd -fPIC -I"$ROOT/plugins/common" -c "$ROOT/plugins/amsu/kernels/amsu_cpu.cc" -o "$WORK/amsu_cpu.o"
"$CXX" -std=c++17 -O2 -fPIC -I"$ROOT/plugins/common" -c "$ROOT/plugins/spikematmul/kernels/spikematmul_cpu.cc" -o "$WORK/spikematmul_cpu.o"
stand_ins=("$ROOT/plugins/amsu/tensorrt/check/cpu_as_cuda.cc" "$ROOT/plugins/spikematmul/tensorrt/check/cpu_as_cuda.cc" "$WORK/amsu_cpu.o" "$WORK/spikematmul_cpu.o")
for op in amsu spikematmul; do
  "$CXX" "${flags[@]}" -pthread -o "$WORK/${op}_host_check" "${objects[@]}" "$ROOT/plugins/$op/tensorrt/check/plugin_host_check.cc" "${stand_ins[@]}"
  if [[ -n "${HOST_CHECK_OUT:-}" ]]; then cp "$WORK/${op}_host_check" "$HOST_CHECK_OUT/"; fi
done
echo "host checks built: plugin objects + plugins/*/tensorrt/check/*.cc + the CPU kernels"
echo "OK: AMSU and SpikeMatMul plugins compile without warnings and link without libnvinfer against TensorRT ${version:-unknown} headers"
