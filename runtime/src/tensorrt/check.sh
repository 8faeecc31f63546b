#!/usr/bin/env bash
# Compile-check the TensorRT backend module (libastroedge_tensorrt.so) against TensorRT's public
# headers, without TensorRT's libraries, without a GPU (as plugins/scripts/check_tensorrt_plugin.sh
# does for the plugin):
#   1. g++ -std=c++17 -Wall -Wextra -Werror -fsyntax-only, then a position-independent object,
#   2. a shared library linked WITHOUT libnvinfer / libnvonnxparser / libcudart, checked with nm: it
#      exports exactly ae_tensorrt_backend, and what it leaves unresolved is TensorRT's and CUDA's
#      entry points plus the C/C++ runtime (the libraries a TensorRT machine provides).
# Usage: runtime/src/tensorrt/check.sh TRT_INCLUDE_DIR [CUDA_INCLUDE_DIR]
set -euo pipefail
TRT_INCLUDE=${1:?usage: $0 TRT_INCLUDE_DIR [CUDA_INCLUDE_DIR]}
CUDA_INCLUDE=${2:-/usr/local/cuda/include}
CXX=${CXX:-g++}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[[ -f "$TRT_INCLUDE/NvInfer.h" && -f "$TRT_INCLUDE/NvOnnxParser.h" ]] || { echo "error: $TRT_INCLUDE has no NvInfer.h / NvOnnxParser.h; pass TensorRT's include/ folder" >&2; exit 2; }
[[ -f "$CUDA_INCLUDE/cuda_runtime_api.h" ]] || { echo "error: $CUDA_INCLUDE/cuda_runtime_api.h not found; pass the CUDA toolkit's include/ folder" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
flags=(-std=c++17 -Wall -Wextra -Werror -fPIC -fvisibility=hidden -O2 -I"$HERE/.." -isystem "$TRT_INCLUDE" -isystem "$CUDA_INCLUDE")
"$CXX" "${flags[@]}" -fsyntax-only "$HERE/ae_tensorrt.cc"
"$CXX" "${flags[@]}" -c "$HERE/ae_tensorrt.cc" -o "$WORK/ae_tensorrt.o"
"$CXX" -shared -o "$WORK/libastroedge_tensorrt.so" "$WORK/ae_tensorrt.o"
exported=$(nm -D --defined-only "$WORK/libastroedge_tensorrt.so" | awk '$2 == "T" {print $3}')
[[ "$exported" == "ae_tensorrt_backend" ]] || { echo "error: exports '$exported', expected only ae_tensorrt_backend" >&2; exit 1; }
unexpected=$(nm -D --undefined-only "$WORK/libastroedge_tensorrt.so" | awk '{print $2}' \
  | grep -Ev '^(cuda[A-Za-z_]+|createInferBuilder_INTERNAL|createInferRuntime_INTERNAL|createNvOnnxParser_INTERNAL|_Z.*|__.*|_Unwind.*|_ITM_.*|pthread_.*|mkdir|getpid|remove|rename|snprintf|memcpy|memmove|memset|strlen|isalnum)(@.*)?$' || true)
[[ -z "$unexpected" ]] || { echo "error: unexpected unresolved symbols: $unexpected" >&2; exit 1; }
echo "TensorRT backend: compiled and linked against the headers in $TRT_INCLUDE; exports ae_tensorrt_backend only"
